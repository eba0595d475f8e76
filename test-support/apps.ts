import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type HttpBindings, serve as honoServe2 } from '@hono/node-server';
import Router from '@koa/router';
import { getCorrelationId } from '@loopsight/context';
import { type AdapterOptions, expectBlocking, type Monitor } from '@loopsight/core';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as honoLoopsight } from '@loopsight/hono';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import express5 from 'express';
import express4 from 'express4';
import fastify5 from 'fastify';
import fastify4 from 'fastify4';
import { Hono } from 'hono';
import { serve as honoServe1 } from 'hono-node-server1';
import koa3 from 'koa';
import koa2 from 'koa2';
import { blockTheLoop, hugeJson, nativeBlockers, parseHugeJson } from './blockers.js';
import { busyWait, hops } from './hops.js';
import { nestFrameworks } from './nest/apps.js';

export interface TestApp {
  url: string;
  monitor: Monitor;
  close(): Promise<void>;
}

export interface Framework {
  name: string;
  start(options?: AdapterOptions, extra?: { outbound?: (target: string) => Promise<unknown>; target?: string }): Promise<TestApp>;
}

/** What every test app serves, whatever the framework. */
const handlers = {
  hops: async () => ({ id: getCorrelationId(), seen: await hops() }),
  user: () => ({ id: getCorrelationId() }),
  slow: () => {
    busyWait(50);
    return { id: getCorrelationId() };
  },
  late: async () => {
    await new Promise((resolve) => setTimeout(resolve, 300));
    return { id: getCorrelationId() };
  },
  block: (ms: unknown) => ({ id: getCorrelationId(), spins: blockTheLoop(Number(ms)) }),
  parse: () => ({ id: getCorrelationId(), items: parseHugeJson(hugeJson()) }),
  expected: (ms: unknown) => ({ id: getCorrelationId(), spins: expectBlocking(() => blockTheLoop(Number(ms))) }),
  native: (kind: unknown) => ({ id: getCorrelationId(), result: nativeBlockers[String(kind)]?.() }),
};

/** Reads a body through the request's own events, the way body parsers do. */
function rawBody(req: IncomingMessage): Promise<{ text: string; idAtEnd: string | null }> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.on('data', (chunk: Buffer) => {
      text += chunk;
    });
    req.on('end', () => resolve({ text, idAtEnd: getCorrelationId() ?? null }));
    req.on('error', reject);
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Listens on an ephemeral port; closing stops the monitor unless it was shared in. */
async function serve(server: Server, monitor: Monitor, options: AdapterOptions | undefined): Promise<TestApp> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    monitor,
    close: async () => {
      await closeServer(server);
      if (!options?.monitor) await monitor.stop();
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: Express 4 and 5 are loaded side by side, untyped.
function expressApp(createExpress: any): Framework['start'] {
  return async (options, extra) => {
    const app = createExpress();
    const middleware = expressLoopsight(options);
    app.use(middleware);
    app.use(createExpress.json());
    // biome-ignore lint/suspicious/noExplicitAny: see above
    const send = (fn: () => unknown) => async (_req: any, res: any, next: any) => {
      try {
        res.json(await fn());
      } catch (error) {
        next(error);
      }
    };
    app.get('/hops/:n', send(handlers.hops));
    app.get('/slow', send(handlers.slow));
    app.get('/late', send(handlers.late));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/block/:ms', (req: any, res: any) => res.json(handlers.block(req.params.ms)));
    app.get('/parse', send(handlers.parse));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/native/:kind', (req: any, res: any) => res.json(handlers.native(req.params.kind)));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/expected/:ms', (req: any, res: any) => res.json(handlers.expected(req.params.ms)));
    const users = createExpress.Router();
    users.get('/:id', send(handlers.user));
    app.use('/users', users);
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.post('/json', (req: any, res: any) => res.json({ id: getCorrelationId(), body: req.body }));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.post('/raw', async (req: any, res: any) => res.json(await rawBody(req)));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/outbound', async (_req: any, res: any) => res.json(await extra?.outbound?.(extra.target ?? '')));
    return serve(createServer(app), middleware.monitor, options);
  };
}

// biome-ignore lint/suspicious/noExplicitAny: Fastify 4 and 5 are loaded side by side.
function fastifyApp(createFastify: any): Framework['start'] {
  return async (options, extra) => {
    const app = createFastify();
    await app.register(fastifyLoopsight, options ?? {});
    app.get('/hops/:n', handlers.hops);
    app.get('/slow', async () => handlers.slow());
    app.get('/late', handlers.late);
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/block/:ms', async (request: any) => handlers.block(request.params.ms));
    app.get('/parse', async () => handlers.parse());
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/native/:kind', async (request: any) => handlers.native(request.params.kind));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.get('/expected/:ms', async (request: any) => handlers.expected(request.params.ms));
    app.get('/users/:id', async () => handlers.user());
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.post('/json', async (request: any) => ({ id: getCorrelationId(), body: request.body }));
    app.addContentTypeParser(
      'application/x-raw',
      (_request: unknown, payload: IncomingMessage, done: (e: Error | null, body?: unknown) => void) => {
        rawBody(payload).then((body) => done(null, body), done);
      },
    );
    // biome-ignore lint/suspicious/noExplicitAny: see above
    app.post('/raw', async (request: any) => request.body);
    app.get('/outbound', async () => extra?.outbound?.(extra.target ?? ''));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, monitor: app.loopsight, close: () => app.close() };
  };
}

// biome-ignore lint/suspicious/noExplicitAny: Koa 2 and 3 are loaded side by side.
function koaApp(Koa: any): Framework['start'] {
  return async (options, extra) => {
    const app = new Koa();
    const middleware = koaLoopsight(options);
    app.use(middleware);
    const router = new Router();
    // biome-ignore lint/suspicious/noExplicitAny: see above
    const send = (fn: () => unknown) => async (ctx: any) => {
      ctx.body = await fn();
    };
    router.get('/hops/:n', send(handlers.hops));
    router.get('/slow', send(handlers.slow));
    router.get('/late', send(handlers.late));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    router.get('/block/:ms', (ctx: any) => {
      ctx.body = handlers.block(ctx.params.ms);
    });
    router.get('/parse', send(handlers.parse));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    router.get('/native/:kind', (ctx: any) => {
      ctx.body = handlers.native(ctx.params.kind);
    });
    // biome-ignore lint/suspicious/noExplicitAny: see above
    router.get('/expected/:ms', (ctx: any) => {
      ctx.body = handlers.expected(ctx.params.ms);
    });
    router.get('/users/:id', send(handlers.user));
    // biome-ignore lint/suspicious/noExplicitAny: see above
    router.post('/json', async (ctx: any) => {
      ctx.body = { id: getCorrelationId(), body: JSON.parse((await rawBody(ctx.req)).text) };
    });
    // biome-ignore lint/suspicious/noExplicitAny: see above
    router.post('/raw', async (ctx: any) => {
      ctx.body = await rawBody(ctx.req);
    });
    // biome-ignore lint/suspicious/noExplicitAny: see above
    router.get('/outbound', async (ctx: any) => {
      ctx.body = await extra?.outbound?.(extra.target ?? '');
    });
    app.use(router.routes());
    return serve(createServer(app.callback()), middleware.monitor, options);
  };
}

/** Hono 4 on @hono/node-server 2 or 1: `serve` is the one that version exports. */
function honoApp(serveHono: typeof honoServe2): Framework['start'] {
  return async (options, extra) => {
    const app = new Hono<{ Bindings: HttpBindings }>();
    const middleware = honoLoopsight(options);
    app.use(middleware);
    app.get('/hops/:n', async (c) => c.json(await handlers.hops()));
    app.get('/slow', (c) => c.json(handlers.slow()));
    app.get('/late', async (c) => c.json(await handlers.late()));
    app.get('/block/:ms', (c) => c.json(handlers.block(c.req.param('ms'))));
    app.get('/parse', (c) => c.json(handlers.parse()));
    app.get('/native/:kind', (c) => c.json(handlers.native(c.req.param('kind'))));
    const users = new Hono();
    users.get('/:id', (c) => c.json(handlers.user()));
    app.route('/users', users);
    app.post('/json', async (c) => c.json({ id: getCorrelationId(), body: await c.req.json() }));
    app.post('/raw', async (c) => c.json(await rawBody(c.env.incoming)));
    app.get('/outbound', async (c) => c.json((await extra?.outbound?.(extra.target ?? '')) ?? null));
    const server = await new Promise<Server>((resolve) => {
      const s = serveHono({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server));
    });
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      monitor: middleware.monitor,
      close: async () => {
        await closeServer(server);
        if (!options?.monitor) await middleware.monitor.stop();
      },
    };
  };
}

export const frameworks: Framework[] = [
  { name: 'express 4', start: expressApp(express4) },
  { name: 'express 5', start: expressApp(express5) },
  { name: 'fastify 4', start: fastifyApp(fastify4) },
  { name: 'fastify 5', start: fastifyApp(fastify5) },
  { name: 'koa 2', start: koaApp(koa2) },
  { name: 'koa 3', start: koaApp(koa3) },
  ...nestFrameworks({ handlers, rawBody }),
  { name: 'hono 4', start: honoApp(honoServe2) },
  { name: 'hono 4 (node-server 1)', start: honoApp(honoServe1 as typeof honoServe2) },
];
