// node servers/shed.mjs <variant> <framework>: the saturation benchmark's server (shed.mjs).
//   GET /heavy → { heavy: true }   after HEAVY_MS of busy CPU (a handler that blocks the loop)
//   GET /light → { light: true }   nothing to do
// Variants: bare (the framework alone), loopsight (promises off, no overload guard),
// loopsight-shed (+ shed at SHED_DELAY_MS of loop delay), under-pressure (Fastify only, same limit).
import http from 'node:http';
import underPressure from '@fastify/under-pressure';
import Router from '@koa/router';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { HOST, pickVariant, serve } from './lib/harness.mjs';

const HEAVY_MS = Number(process.env.SHED_HEAVY_MS ?? 10);
const SHED_DELAY_MS = Number(process.env.SHED_DELAY_MS ?? 50);

/** A handler that keeps the loop busy for `ms`: CPU-bound work such as rendering or hashing. */
function busyWait(ms) {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x++;
  return x;
}

const quiet = { promises: false, onReport: () => {}, logger: { warn() {} } };
const options = (variant) => (variant === 'loopsight-shed' ? { ...quiet, shed: { maxEventLoopDelayMs: SHED_DELAY_MS } } : quiet);

const apps = {
  async express(variant) {
    const app = express();
    if (variant.startsWith('loopsight')) app.use(expressLoopsight(options(variant)));
    app.get('/heavy', (_req, res) => {
      busyWait(HEAVY_MS);
      res.json({ heavy: true });
    });
    app.get('/light', (_req, res) => res.json({ light: true }));
    const server = http.createServer(app);
    await new Promise((resolve) => server.listen(0, HOST, resolve));
    return { server };
  },
  async fastify(variant) {
    const app = Fastify({ logger: false });
    if (variant.startsWith('loopsight')) await app.register(fastifyLoopsight, options(variant));
    if (variant === 'under-pressure') await app.register(underPressure, { maxEventLoopDelay: SHED_DELAY_MS, retryAfter: 10 });
    app.get('/heavy', async () => {
      busyWait(HEAVY_MS);
      return { heavy: true };
    });
    app.get('/light', async () => ({ light: true }));
    await app.listen({ host: HOST, port: 0 });
    return { server: app.server, close: () => app.close() };
  },
  async koa(variant) {
    const app = new Koa();
    if (variant.startsWith('loopsight')) app.use(koaLoopsight(options(variant)));
    const router = new Router();
    router.get('/heavy', (ctx) => {
      busyWait(HEAVY_MS);
      ctx.body = { heavy: true };
    });
    router.get('/light', (ctx) => {
      ctx.body = { light: true };
    });
    app.use(router.routes());
    const server = http.createServer(app.callback());
    await new Promise((resolve) => server.listen(0, HOST, resolve));
    return { server };
  },
};

const framework = process.argv[3];
if (!Object.hasOwn(apps, framework)) {
  console.error(`unknown framework ${JSON.stringify(framework)}; known: ${Object.keys(apps).join(', ')}`);
  process.exit(2);
}
const variants = { bare: 1, loopsight: 1, 'loopsight-shed': 1, ...(framework === 'fastify' ? { 'under-pressure': 1 } : {}) };
const { name } = pickVariant(variants);
const { server, close } = await apps[framework](name);
serve(server, name, close);
