// One app per framework, as a user writes it against the latest published peers: loopsight from
// the packed tarballs, both exporters (prom-client's default registry, an OpenTelemetry SDK
// MeterProvider). Prints one JSON line: the ids 300 concurrent requests got back, the 'request'
// events, the stall of a 300 ms block and both exporters' view of it. Usage: node server.mjs <framework>
import 'reflect-metadata';
import http from 'node:http';
import { getCorrelationId } from '@loopsight/context';
import { otelExporter } from '@loopsight/otel';
import { prometheusExporter } from '@loopsight/prometheus';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { register } from 'prom-client';

const framework = process.argv[2];
const CONCURRENT = 300;
const BLOCK_MS = 300;

const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
const meterProvider = new MeterProvider({ readers: [reader] });
const stalls = [];
const options = {
  promises: false,
  onReport: (report) => report.type === 'stall' && stalls.push(report),
  exporters: [prometheusExporter(), otelExporter({ meterProvider })],
};

/** A named busy-wait: the stall report's culprit. */
function blockFor(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
  return { id: getCorrelationId() };
}

async function user() {
  await new Promise((resolve) => setTimeout(resolve, 5));
  await new Promise((resolve) => setImmediate(resolve));
  return { id: getCorrelationId() };
}

async function listen(handler, monitor) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, monitor, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function nest(platform) {
  const { LoopsightModule, Monitor } = await import('@loopsight/nestjs');
  const { Controller, Get, Module, Param } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { ExpressAdapter } = await import('@nestjs/platform-express');
  const { FastifyAdapter } = await import('@nestjs/platform-fastify');
  // Nest's decorators applied by hand: this file is plain JavaScript.
  class UsersController {
    get() {
      return user();
    }
    block(ms) {
      return blockFor(Number(ms));
    }
  }
  const method = (name) => Object.getOwnPropertyDescriptor(UsersController.prototype, name);
  Controller()(UsersController);
  Get('users/:id')(UsersController.prototype, 'get', method('get'));
  Get('block/:ms')(UsersController.prototype, 'block', method('block'));
  Param('ms')(UsersController.prototype, 'block', 0);
  class AppModule {}
  Module({ imports: [LoopsightModule.forRoot(options)], controllers: [UsersController] })(AppModule);
  const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
  const app = await NestFactory.create(AppModule, adapter, { logger: false, forceCloseConnections: true });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return { url, monitor: app.get(Monitor), close: () => app.close() };
}

const apps = {
  async express() {
    const { loopsight } = await import('@loopsight/express');
    const { default: express } = await import('express');
    const app = express();
    const ls = loopsight(options);
    app.use(ls);
    app.get('/users/:id', async (_req, res) => res.json(await user()));
    app.get('/block/:ms', (req, res) => res.json(blockFor(Number(req.params.ms))));
    return listen(app, ls.monitor);
  },
  async fastify() {
    const { loopsight } = await import('@loopsight/fastify');
    const { default: Fastify } = await import('fastify');
    const app = Fastify();
    await app.register(loopsight, options);
    app.get('/users/:id', user);
    app.get('/block/:ms', async (request) => blockFor(Number(request.params.ms)));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, monitor: app.loopsight, close: () => app.close() };
  },
  async koa() {
    const { loopsight } = await import('@loopsight/koa');
    const { default: Koa } = await import('koa');
    const { default: Router } = await import('@koa/router');
    const app = new Koa();
    const ls = loopsight(options);
    app.use(ls);
    const router = new Router()
      .get('/users/:id', async (ctx) => {
        ctx.body = await user();
      })
      .get('/block/:ms', (ctx) => {
        ctx.body = blockFor(Number(ctx.params.ms));
      });
    app.use(router.routes());
    return listen(app.callback(), ls.monitor);
  },
  async hono() {
    const { loopsight } = await import('@loopsight/hono');
    const { Hono } = await import('hono');
    const { getRequestListener } = await import('@hono/node-server');
    const app = new Hono();
    const ls = loopsight(options);
    app.use(ls);
    app.get('/users/:id', async (c) => c.json(await user()));
    app.get('/block/:ms', (c) => c.json(blockFor(Number(c.req.param('ms')))));
    return listen(getRequestListener(app.fetch), ls.monitor);
  },
  'nest-express': () => nest('express'),
  'nest-fastify': () => nest('fastify'),
};

async function get(url, headers) {
  const response = await fetch(url, { headers });
  return { status: response.status, echoed: response.headers.get('x-request-id'), body: await response.json() };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const app = await apps[framework]();
const events = [];
app.monitor.on('request', (r) => events.push({ correlationId: r.correlationId, route: r.route, status: r.status }));

// Let the watchdog's thread start before the block.
await sleep(300);
const blockId = `${framework}-block`;
const blocked = await get(`${app.url}/block/${BLOCK_MS}`, { 'x-request-id': blockId });
const ours = () => stalls.find((report) => report.request?.correlationId === blockId);
for (let waited = 0; !ours() && waited < 5000; waited += 50) await sleep(50);
const stall = ours();

const ids = Array.from({ length: CONCURRENT }, (_, i) => `${framework}-${i}`);
const responses = await Promise.all(ids.map((id) => get(`${app.url}/users/${id}`, { 'x-request-id': id })));

const prometheus = (await register.metrics()).split('\n').filter((line) => line.startsWith('loopsight_event_loop_stalls_total{'));
metricExporter.reset();
await reader.forceFlush();
const otel = {};
for (const rm of metricExporter.getMetrics()) {
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) otel[m.descriptor.name] = m.dataPoints.map((p) => ({ attributes: p.attributes, value: p.value }));
  }
}
await app.close();
await app.monitor.stop();
await meterProvider.shutdown();

process.stdout.write(
  `${JSON.stringify({
    framework,
    blocked,
    stall: stall && { durationMs: stall.durationMs, request: stall.request, culprit: stall.culprit?.functionName },
    responses: responses.map((r, i) => ({ sent: ids[i], status: r.status, echoed: r.echoed, seen: r.body.id })),
    events,
    prometheus,
    otelStalls: otel['loopsight.eventloop.stalls'] ?? [],
  })}\n`,
);
