import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer as honoServer2 } from '@hono/node-server';
import Router from '@koa/router';
import type { AdapterOptions, Monitor } from '@loopsight/core';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as honoLoopsight } from '@loopsight/hono';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import express5 from 'express';
import express4 from 'express4';
import fastify5 from 'fastify';
import fastify4 from 'fastify4';
import { Hono } from 'hono';
import { createAdaptorServer as honoServer1 } from 'hono-node-server1';
import koa3 from 'koa';
import koa2 from 'koa2';

/** Runs the named scenario; the handler responds with what it returned. */
export type Run = (name: string) => Promise<unknown>;

export interface PromiseApp {
  url: string;
  monitor: Monitor;
  close(): Promise<void>;
}

export interface Framework {
  name: string;
  start(options: AdapterOptions, run: Run): Promise<PromiseApp>;
}

async function serve(server: Server, monitor: Monitor): Promise<PromiseApp> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    monitor,
    close: async () => {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
      await monitor.stop();
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: Express 4 and 5 are loaded side by side, untyped.
function expressApp(createExpress: any): Framework['start'] {
  return (options, run) => {
    const app = createExpress();
    const middleware = expressLoopsight(options);
    app.use(middleware);
    // An async middleware: Express 5 handles the promise it returns, Express 4 drops it.
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.use(async (_req: any, _res: any, next: any) => {
      await Promise.resolve();
      next();
    });
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/run/:name', async (req: any, res: any) => {
      res.json({ result: await run(req.params.name) });
    });
    return serve(createServer(app), middleware.monitor);
  };
}

// biome-ignore lint/suspicious/noExplicitAny: Fastify 4 and 5 are loaded side by side.
function fastifyApp(createFastify: any): Framework['start'] {
  return async (options, run) => {
    const app = createFastify();
    await app.register(fastifyLoopsight, options);
    // Async hooks and an async handler: Fastify awaits each.
    app.addHook('preHandler', async () => {
      await Promise.resolve();
    });
    app.addHook('onSend', async (_request: unknown, _reply: unknown, payload: unknown) => payload);
    app.addHook('onResponse', async () => {});
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/run/:name', async (request: any) => ({ result: await run(request.params.name) }));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, monitor: app.loopsight, close: () => app.close() };
  };
}

// biome-ignore lint/suspicious/noExplicitAny: Koa 2 and 3 are loaded side by side.
function koaApp(Koa: any): Framework['start'] {
  return (options, run) => {
    const app = new Koa();
    const middleware = koaLoopsight(options);
    app.use(middleware);
    // A middleware chain: each awaits the next.
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.use(async (ctx: any, next: () => Promise<void>) => {
      await next();
      ctx.set('x-chain', 'done');
    });
    const router = new Router();
    // biome-ignore lint/suspicious/noExplicitAny: see above
    router.get('/run/:name', async (ctx: any) => {
      ctx.body = { result: await run(ctx.params.name) };
    });
    app.use(router.routes());
    return serve(createServer(app.callback()), middleware.monitor);
  };
}

function honoApp(honoServer: typeof honoServer2): Framework['start'] {
  return (options, run) => {
    const app = new Hono();
    const middleware = honoLoopsight(options);
    app.use(middleware);
    // A middleware chain: each awaits the next.
    app.use(async (c, next) => {
      await next();
      c.header('x-chain', 'done');
    });
    app.get('/run/:name', async (c) => c.json({ result: await run(c.req.param('name')) }));
    return serve(honoServer({ fetch: app.fetch }) as Server, middleware.monitor);
  };
}

export const frameworks: Framework[] = [
  { name: 'express 4', start: expressApp(express4) },
  { name: 'express 5', start: expressApp(express5) },
  { name: 'fastify 4', start: fastifyApp(fastify4) },
  { name: 'fastify 5', start: fastifyApp(fastify5) },
  { name: 'koa 2', start: koaApp(koa2) },
  { name: 'koa 3', start: koaApp(koa3) },
  { name: 'hono 4', start: honoApp(honoServer2) },
  { name: 'hono 4 (node-server 1)', start: honoApp(honoServer1 as typeof honoServer2) },
];
