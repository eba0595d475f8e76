// node --expose-gc --import ./soak/otel-setup.mjs soak/server.mjs <express|fastify|koa|hono> <upstream url> <sample ms> <leakAfterMs>
// The service under soak: a real app with the loopsight adapter, the Prometheus exporter (/metrics)
// and the OTel exporter (a MeterProvider with a periodic in-memory reader; the traced HTTP server of
// otel-setup.mjs, spans to memory; both emptied at every sample so they stay bounded). Started by soak.mjs,
// which talks to it over IPC:
//
//   child  → parent  { type: 'ready', port }
//   child  → parent  { type: 'sample', sample }        every sample interval, and after { type: 'probe' }
//   parent → child   { type: 'probe' }                 one sample now (marked probe: true)
//   parent → child   { type: 'stop' }                  close and exit
//
// It exits when the parent goes away, so a crashed harness leaves nothing behind.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import Router from '@koa/router';
import { getCorrelationId } from '@loopsight/context';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as honoLoopsight } from '@loopsight/hono';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import { otelExporter } from '@loopsight/otel';
import { prometheusExporter } from '@loopsight/prometheus';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { Registry } from 'prom-client';

const [framework, upstream, sampleArg, leakArg] = process.argv.slice(2);
const SAMPLE_MS = Number(sampleArg);
const LEAK_AFTER_MS = Number(leakArg);
// A leaked promise outlives its request by this much more than leakAfterMs, so it is decided well within the run.
const LEAK_HOLD_MS = LEAK_AFTER_MS + 1000;
const SLOW_MS = 1000;
// Stall reports forwarded per sample; more are counted, not listed.
const MAX_STALLS_PER_SAMPLE = 1000;

if (typeof process.send !== 'function') {
  console.error('this server is started by benchmarks/soak.mjs (it needs an IPC channel)');
  process.exit(2);
}

// --- exporters -------------------------------------------------------------------------------

const registry = new Registry();
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const meterProvider = new MeterProvider({
  readers: [new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: Math.min(5000, SAMPLE_MS) })],
});
if (!globalThis.__soakOtel) throw new Error('the soak server runs with --import ./soak/otel-setup.mjs');
const { spanExporter, tracerProvider } = globalThis.__soakOtel;

let warnings = [];
const options = {
  promises: { mode: 'full', leakAfterMs: LEAK_AFTER_MS },
  exporters: [prometheusExporter({ registry }), otelExporter({ meterProvider, tracerProvider })],
  // Reports are counted below; the default stderr line per report would only flood the harness.
  onReport: () => {},
  // loopsight's own warnings (each at most once) go to the harness with the time they came.
  logger: { warn: (message) => warnings.push({ t: Date.now(), message }) },
};

// --- what the routes do ----------------------------------------------------------------------

/** The injected stall: a named busy-wait the stall report should name. */
function soakStall(ms) {
  const end = performance.now() + ms;
  let spins = 0;
  while (performance.now() < end) spins++;
  return spins;
}

async function step(i) {
  await null;
  return i;
}

async function tenAwaits() {
  let sum = 0;
  for (let i = 0; i < 10; i++) sum += await step(i);
  return { sum };
}

/** Outbound call: loopsight should carry the request's id onto it. */
async function callUpstream() {
  const response = await fetch(upstream);
  const body = await response.json();
  return { id: getCorrelationId(), upstreamSaw: body.saw };
}

async function auditLater() {
  await new Promise((resolve) => setTimeout(resolve, 20));
}

/** A floating promise: an async call nobody awaits. */
function floating() {
  auditLater();
  return { id: getCorrelationId() };
}

function holdOn() {
  return new Promise((resolve) => setTimeout(resolve, LEAK_HOLD_MS));
}

/** A leaked promise: observed (so not floating), but pending long after the request ended. */
function leaked() {
  holdOn().catch(() => {});
  return { id: getCorrelationId() };
}

async function slow() {
  await new Promise((resolve) => setTimeout(resolve, SLOW_MS));
  return { id: getCorrelationId() };
}

const routes = {
  '/hello': () => ({ hello: 'world' }),
  '/awaits': tenAwaits,
  '/outbound': callUpstream,
  '/floating': floating,
  '/leaked': leaked,
  '/slow': slow,
};
const metricsText = () => registry.metrics();

// --- one app per framework ---------------------------------------------------------------------

async function expressApp() {
  const app = express();
  const middleware = expressLoopsight(options);
  app.use(middleware);
  for (const [path, fn] of Object.entries(routes)) {
    app.get(path, async (_req, res, next) => {
      try {
        res.json(await fn());
      } catch (error) {
        next(error);
      }
    });
  }
  app.get('/stall/:ms', (req, res) => res.json({ spins: soakStall(Number(req.params.ms)) }));
  app.get('/metrics', async (_req, res) => res.type('text/plain').send(await metricsText()));
  const server = http.createServer(app);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, monitor: middleware.monitor, close: () => closeServer(server) };
}

async function fastifyApp() {
  const app = Fastify();
  await app.register(fastifyLoopsight, options);
  for (const [path, fn] of Object.entries(routes)) app.get(path, async () => fn());
  app.get('/stall/:ms', async (request) => ({ spins: soakStall(Number(request.params.ms)) }));
  app.get('/metrics', async (_request, reply) => reply.type('text/plain').send(await metricsText()));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { server: app.server, monitor: app.loopsight, close: () => app.close() };
}

async function koaApp() {
  const app = new Koa();
  const middleware = koaLoopsight(options);
  app.use(middleware);
  const router = new Router();
  for (const [path, fn] of Object.entries(routes)) {
    router.get(path, async (ctx) => {
      ctx.body = await fn();
    });
  }
  router.get('/stall/:ms', (ctx) => {
    ctx.body = { spins: soakStall(Number(ctx.params.ms)) };
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = 'text/plain';
    ctx.body = await metricsText();
  });
  app.use(router.routes());
  const server = http.createServer(app.callback());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, monitor: middleware.monitor, close: () => closeServer(server) };
}

async function honoApp() {
  const app = new Hono();
  const middleware = honoLoopsight(options);
  app.use(middleware);
  for (const [path, fn] of Object.entries(routes)) app.get(path, async (c) => c.json(await fn()));
  app.get('/stall/:ms', (c) => c.json({ spins: soakStall(Number(c.req.param('ms'))) }));
  app.get('/metrics', async (c) => c.text(await metricsText()));
  const server = createAdaptorServer({ fetch: app.fetch });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, monitor: middleware.monitor, close: () => closeServer(server) };
}

function closeServer(server) {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

const apps = { express: expressApp, fastify: fastifyApp, koa: koaApp, hono: honoApp };
if (!Object.hasOwn(apps, framework)) {
  console.error(`unknown framework ${JSON.stringify(framework)}; known: ${Object.keys(apps).join(', ')}`);
  process.exit(2);
}
const { server, monitor, close } = await apps[framework]();

// --- what loopsight reported -------------------------------------------------------------------

let stalls = [];
let stallsDropped = 0;
let stallsTotal = 0;
monitor.on('stall', (report) => {
  stallsTotal++;
  if (stalls.length >= MAX_STALLS_PER_SAMPLE) {
    stallsDropped++;
    return;
  }
  stalls.push({
    id: report.request?.correlationId,
    candidates: (report.candidates ?? []).map((scope) => scope.correlationId),
    durationMs: Math.round(report.durationMs),
    at: report.at,
    stackSource: report.stackSource,
    top: report.stack[0]?.functionName,
  });
});
const promiseReports = { floating: 0, leaked: 0, unhandled: 0 };
monitor.on('promise', (report) => {
  promiseReports[report.kind]++;
});

let spansExported = 0;
let metricExports = 0;
let requests = 0;
server.on('request', () => {
  requests++;
});

// --- samples -------------------------------------------------------------------------------------

function threads() {
  const match = /^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) : 0;
}

// Open handles swing with the requests in flight at the instant they are counted; the median of
// counts every 250 ms over the interval moves only when the level does, which is what a leak moves.
const HANDLE_COUNT_MS = 250;
let handleCounts = [];
setInterval(() => handleCounts.push(process.getActiveResourcesInfo().length), HANDLE_COUNT_MS).unref();

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function sample(probe) {
  // A full GC first, so heap used is the live heap and its trend is not the collector's sawtooth.
  globalThis.gc?.();
  const memory = process.memoryUsage();
  spansExported += spanExporter.getFinishedSpans().length;
  spanExporter.reset();
  metricExports += metricExporter.getMetrics().length;
  metricExporter.reset();
  const out = {
    t: Date.now(),
    probe,
    heapUsed: memory.heapUsed,
    rss: memory.rss,
    // A probe is a single count taken when the load is off; an interval's sample is the median.
    handles: probe || handleCounts.length === 0 ? process.getActiveResourcesInfo().length : median(handleCounts),
    resources: countBy(process.getActiveResourcesInfo()),
    threads: threads(),
    requests,
    stalls,
    stallsTotal,
    stallsDropped,
    promiseReports: { ...promiseReports },
    counters: monitor.counters(),
    spansExported,
    metricExports,
    warnings,
  };
  warnings = [];
  stalls = [];
  stallsDropped = 0;
  if (!probe) handleCounts = [];
  return out;
}

function countBy(names) {
  const counts = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

setInterval(() => process.send({ type: 'sample', sample: sample(false) }), SAMPLE_MS).unref();

process.on('message', (message) => {
  if (message?.type === 'probe') process.send({ type: 'sample', sample: sample(true) });
  if (message?.type === 'stop') {
    setTimeout(() => process.exit(0), 2000).unref();
    Promise.resolve()
      .then(close)
      .then(() => Promise.all([meterProvider.shutdown(), tracerProvider.shutdown()]))
      .finally(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));

process.send({ type: 'ready', port: server.address().port, pid: process.pid });
