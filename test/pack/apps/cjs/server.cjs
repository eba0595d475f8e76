// A CommonJS app on the older majors: Express 4, Fastify 4, Koa 2, Hono 4 on @hono/node-server 1,
// loopsight through require().
const { getRequestListener } = require('@hono/node-server');
const Router = require('@koa/router');
const { getCorrelationId } = require('@loopsight/context');
const { loopsight: expressLoopsight } = require('@loopsight/express');
const { loopsight: fastifyLoopsight } = require('@loopsight/fastify');
const { loopsight: honoLoopsight } = require('@loopsight/hono');
const { loopsight: koaLoopsight } = require('@loopsight/koa');
const express = require('express');
const Fastify = require('fastify');
const { Hono } = require('hono');
const Koa = require('koa');
const { listen, probe } = require('./probe.cjs');

async function user() {
  await new Promise((resolve) => setTimeout(resolve, 5));
  return { id: getCorrelationId() };
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

async function main() {
  const results = [];
  for (const [name, start] of Object.entries(apps)) results.push(await probe(`cjs-${name}`, await start()));
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
