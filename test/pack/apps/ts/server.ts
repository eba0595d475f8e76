// A TypeScript ESM app (module nodenext, strict): Express 5, Fastify 5, Koa 3 and Hono 4 with their
// typings. Compiled with tsc, then run.
import { getRequestListener } from '@hono/node-server';
import Router from '@koa/router';
import { getCorrelationId } from '@loopsight/context';
import type { Monitor } from '@loopsight/core';
import { createDashboard } from '@loopsight/dashboard';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as honoLoopsight } from '@loopsight/hono';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { listen, type ProbedApp, probe } from './probe.cjs';

async function user(): Promise<{ id: string | undefined }> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  return { id: getCorrelationId() };
}

const apps: Record<string, () => Promise<ProbedApp>> = {
  async express() {
    const app = express();
    const ls = expressLoopsight({ loopLag: { stallThresholdMs: 200 } });
    app.use(ls);
    // The dashboard's mounts type-check against each framework's own typings.
    app.use(createDashboard(ls.monitor).express);
    app.get('/users/:id', async (_req, res) => {
      res.json(await user());
    });
    return listen(app, ls.monitor);
  },
  async fastify() {
    const app = Fastify();
    await app.register(fastifyLoopsight, { correlation: { accept: ['x-request-id'] } });
    const monitor: Monitor = app.loopsight; // typed by the plugin's `declare module 'fastify'`
    await app.register(createDashboard(monitor).fastify);
    app.get('/users/:id', user);
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, monitor, close: () => app.close() };
  },
  async koa() {
    const app = new Koa();
    const ls = koaLoopsight();
    app.use(ls);
    app.use(createDashboard(ls.monitor).koa);
    const router = new Router().get('/users/:id', async (ctx) => {
      ctx.body = await user();
    });
    app.use(router.routes());
    return listen(app.callback(), ls.monitor);
  },
  async hono() {
    const app = new Hono();
    const ls = honoLoopsight({ promises: { mode: 'sampled' } });
    app.use(ls);
    const users = new Hono().get('/:id', async (c) => {
      const requestId: string = c.get('requestId'); // typed by the middleware's `declare module 'hono'`
      const { id } = await user();
      return c.json({ id: id === requestId ? id : 'mismatch' });
    });
    app.route('/users', users);
    return listen(getRequestListener(app.fetch), ls.monitor);
  },
};

const results: unknown[] = [];
for (const [name, start] of Object.entries(apps)) results.push(await probe(`ts-${name}`, await start()));
process.stdout.write(JSON.stringify(results));
