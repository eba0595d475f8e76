// Nest apps for the shared adapter tests: the same routes as apps.ts serves on every framework,
// declared the Nest way (a controller), on @nestjs/platform-express and @nestjs/platform-fastify.
// Decorators are compiled by vitest (legacy decorators, this folder's tsconfig.json) without
// metadata: every injection names its token.
import 'reflect-metadata';
import type { IncomingMessage } from 'node:http';
import { getCorrelationId } from '@loopsight/context';
import type { AdapterOptions } from '@loopsight/core';
import { LoopsightModule, Monitor } from '@loopsight/nestjs';
import { Body, Controller, Get, HttpCode, type INestApplication, Inject, Module, Param, Post, Req } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { Framework, TestApp } from '../apps.js';

const EXTRA = Symbol('extra');
type Extra = Parameters<Framework['start']>[1];

/** What apps.ts serves on every framework; passed in, so that this file does not import apps.ts back. */
export interface Shared {
  handlers: Record<'hops' | 'slow' | 'late' | 'parse' | 'user', () => unknown> & { block(ms: unknown): unknown };
  rawBody(req: IncomingMessage): Promise<unknown>;
}

function suiteController({ handlers, rawBody }: Shared) {
  @Controller()
  class SuiteController {
    @Inject(EXTRA) private readonly extra: Extra;

    @Get('hops/:n') hops() {
      return handlers.hops();
    }
    @Get('slow') slow() {
      return handlers.slow();
    }
    @Get('late') late() {
      return handlers.late();
    }
    @Get('block/:ms') block(@Param('ms') ms: string) {
      return handlers.block(ms);
    }
    @Get('parse') parse() {
      return handlers.parse();
    }
    @Get('users/:id') user() {
      return handlers.user();
    }
    @Post('json') @HttpCode(200) json(@Body() body: unknown) {
      return { id: getCorrelationId(), body };
    }
    // Express leaves an unknown content type unread; on Fastify the parser below read it.
    @Post('raw') @HttpCode(200) raw(@Req() req: IncomingMessage & { raw?: unknown; body?: unknown }) {
      return req.raw === undefined ? rawBody(req) : req.body;
    }
    @Get('outbound') outbound() {
      return this.extra?.outbound?.(this.extra.target ?? '');
    }
  }
  return SuiteController;
}

export type Platform = 'express' | 'fastify';

/**
 * A Nest app on `platform` with `imports` (LoopsightModule among them), listening on an ephemeral
 * port: `before` gets the platform adapter, `configure` the app before it listens (prefix, versioning),
 * `options` go to NestFactory.create (default: no Nest logs).
 */
export async function startNest(
  platform: Platform,
  // biome-ignore lint/suspicious/noExplicitAny: Nest's module classes, dynamic modules and arrays of both.
  metadata: { imports?: any[]; controllers?: any[]; providers?: any[] },
  before?: (adapter: ExpressAdapter | FastifyAdapter) => void,
  configure?: (app: INestApplication) => void,
  options: NestApplicationOptions = {},
): Promise<INestApplication> {
  @Module(metadata)
  class AppModule {}
  const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
  before?.(adapter);
  const app = await NestFactory.create(AppModule, adapter, {
    logger: process.env.NEST_DEBUG ? ['error'] : false,
    abortOnError: false,
    forceCloseConnections: true,
    ...options,
  });
  configure?.(app);
  await app.listen(0, '127.0.0.1');
  return app;
}

async function urlOf(app: INestApplication): Promise<string> {
  return (await app.getUrl()).replace('[::1]', '127.0.0.1');
}

function nestApp(platform: Platform, shared: Shared): Framework['start'] {
  const SuiteController = suiteController(shared);
  return async (options?: AdapterOptions, extra?: Extra): Promise<TestApp> => {
    const app = await startNest(
      platform,
      {
        imports: [LoopsightModule.forRoot(options)],
        controllers: [SuiteController],
        providers: [{ provide: EXTRA, useValue: extra }],
      },
      (adapter) => {
        if (!(adapter instanceof FastifyAdapter)) return;
        adapter.getInstance().addContentTypeParser('application/x-raw', (_request, payload, done) => {
          shared.rawBody(payload).then((body) => done(null, body), done);
        });
      },
    );
    return { url: await urlOf(app), monitor: app.get(Monitor), close: () => app.close() };
  };
}

export function nestFrameworks(shared: Shared): Framework[] {
  return [
    { name: 'nest 11 express', start: nestApp('express', shared) },
    { name: 'nest 11 fastify', start: nestApp('fastify', shared) },
  ];
}
