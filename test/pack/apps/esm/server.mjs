// An ESM app as a user writes it: loopsight from the packed tarballs; Express 5, Fastify 5, Koa 3
// and @koa/router, Hono 4 on @hono/node-server 2 from the registry; legacy-dep, a CommonJS package that reads the id itself.
import { getRequestListener } from '@hono/node-server';
import Router from '@koa/router';
import { getCorrelationId } from '@loopsight/context';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as honoLoopsight } from '@loopsight/hono';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import legacy from 'legacy-dep';
import { listen, probe } from './probe.cjs';

async function user() {
  await new Promise((resolve) => setTimeout(resolve, 5));
  return { id: getCorrelationId(), fromCommonJs: legacy.correlationId() };
}

const apps = {
  async express() {
    const app = express();
    const ls = expressLoopsight();
    app.use(ls);
    app.get('/users/:id', async (_req, res) => res.json(await user()));
    return listen(app, ls.monitor);
  },
  async fastify() {
    const app = Fastify();
    await app.register(fastifyLoopsight);
    app.get('/users/:id', user);
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, monitor: app.loopsight, close: () => app.close() };
  },
  async koa() {
    const app = new Koa();
    const ls = koaLoopsight();
    app.use(ls);
    const router = new Router().get('/users/:id', async (ctx) => {
      ctx.body = await user();
    });
    app.use(router.routes());
    return listen(app.callback(), ls.monitor);
  },
  async hono() {
    const app = new Hono();
    const ls = honoLoopsight();
    app.use(ls);
    app.route(
      '/users',
      new Hono().get('/:id', async (c) => c.json(await user())),
    );
    return listen(getRequestListener(app.fetch), ls.monitor);
  },
};

const results = [];
for (const [name, start] of Object.entries(apps)) results.push(await probe(`esm-${name}`, await start()));
process.stdout.write(JSON.stringify(results));
