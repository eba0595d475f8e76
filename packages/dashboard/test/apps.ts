import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import { getCorrelationId } from '@loopsight/context';
import type { AdapterOptions, Monitor } from '@loopsight/core';
import { createDashboard, type Dashboard, type DashboardOptions } from '@loopsight/dashboard';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import express from 'express';
import fastify from 'fastify';
import Koa from 'koa';
import { writeIgnoring } from '../../../test-support/backpressure.js';
import { blockTheLoop } from '../../../test-support/blockers.js';

export interface DashboardApp {
  url: string;
  monitor: Monitor;
  dashboard: Dashboard;
  close(): Promise<void>;
}

/** Pretends to send an email; the handler below forgets to await it. */
async function sendReceipt(order: string): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return `receipt for ${order}`;
}

/** What every app serves: a stall of known length, a floating promise, a request that waits. */
const handlers = {
  block: (ms: string) => ({ id: getCorrelationId(), spins: blockTheLoop(Number(ms)) }),
  checkout: () => {
    sendReceipt('order-1');
    return { id: getCorrelationId() };
  },
  wait: async (ms: string) => {
    await new Promise((resolve) => setTimeout(resolve, Number(ms)));
    return { id: getCorrelationId() };
  },
};

/** Listens on an ephemeral port; closing ends open feeds' connections and stops the monitor. */
async function serve(server: Server, monitor: Monitor, dashboard: Dashboard): Promise<DashboardApp> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    monitor,
    dashboard,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
      await monitor.stop();
    },
  };
}

type Start = (options: AdapterOptions, dashboard: DashboardOptions) => Promise<DashboardApp>;

const startExpress: Start = async (options, dashboardOptions) => {
  const app = express();
  const ls = expressLoopsight(options);
  app.use(ls);
  const dashboard = createDashboard(ls.monitor, dashboardOptions);
  app.use(dashboard.express);
  app.get('/block/:ms', (req, res) => {
    res.json(handlers.block(req.params.ms));
  });
  app.post('/checkout', (_req, res) => {
    res.status(202).json(handlers.checkout());
  });
  app.get('/orders/:id/wait/:ms', async (req, res) => {
    res.json(await handlers.wait(req.params.ms));
  });
  // 64 MB written without looking at write()'s false: a backpressure report for the panel.
  app.get('/export/:format', (_req, res) => writeIgnoring(res));
  return serve(createServer(app), ls.monitor, dashboard);
};

const startFastify: Start = async (options, dashboardOptions) => {
  const app = fastify();
  await app.register(fastifyLoopsight, options);
  const dashboard = createDashboard(app.loopsight, dashboardOptions);
  await app.register(dashboard.fastify);
  app.get<{ Params: { ms: string } }>('/block/:ms', async (request) => handlers.block(request.params.ms));
  app.post('/checkout', async (_request, reply) => reply.status(202).send(handlers.checkout()));
  app.get<{ Params: { ms: string } }>('/orders/:id/wait/:ms', async (request) => handlers.wait(request.params.ms));
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    monitor: app.loopsight,
    dashboard,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
};

const startKoa: Start = async (options, dashboardOptions) => {
  const app = new Koa();
  const ls = koaLoopsight(options);
  app.use(ls);
  const dashboard = createDashboard(ls.monitor, dashboardOptions);
  app.use(dashboard.koa);
  const router = new Router();
  router.get('/block/:ms', (ctx) => {
    ctx.body = handlers.block(ctx.params.ms ?? '0');
  });
  router.post('/checkout', (ctx) => {
    ctx.status = 202;
    ctx.body = handlers.checkout();
  });
  router.get('/orders/:id/wait/:ms', async (ctx) => {
    ctx.body = await handlers.wait(ctx.params.ms ?? '0');
  });
  app.use(router.routes());
  return serve(createServer(app.callback()), ls.monitor, dashboard);
};

export const frameworks: { name: string; start: Start }[] = [
  { name: 'express', start: startExpress },
  { name: 'fastify', start: startFastify },
  { name: 'koa', start: startKoa },
];
