// A BullMQ pipeline with loopsight: an HTTP endpoint enqueues jobs, a worker (concurrency 4) charges
// orders through a payments service and writes them to a slow store (2 writes at a time), renders
// invoices (which blocks the loop) and sends emails (one floats a promise). It prints what loopsight saw.
// Run it with `npx pnpm@10.34.9 --filter pipeline-example start` (`short` for CI's short run).
// A Redis of your own: REDIS_URL=redis://host:6379; without it, a private redis-server is started.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { loopsight, propagate } from '@loopsight/bullmq';
import { getCorrelationId } from '@loopsight/context';
import { createMonitor } from '@loopsight/core';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { prometheusExporter } from '@loopsight/prometheus';
import { Queue, Worker } from 'bullmq';
import express from 'express';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { startRedis } from '../start-redis.mjs';

const SHORT = process.argv.includes('--short');
const ORDERS = SHORT ? 40 : 400;

const redis = process.env.REDIS_URL ? undefined : await startRedis();
const redisUrl = process.env.REDIS_URL || redis.url;
// BullMQ wants maxRetriesPerRequest: null on the connections its workers block on.
const connections = [];
const connect = () => {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  connections.push(connection);
  return connection;
};
const queueName = `orders-${process.pid}`;

// A downstream payments service that answers with the id it received.
const payments = http.createServer((req, res) => res.end(JSON.stringify({ sawRequestId: req.headers['x-request-id'] ?? null })));
await new Promise((resolve) => payments.listen(0, '127.0.0.1', resolve));
const paymentsUrl = `http://127.0.0.1:${payments.address().port}`;
// Node loads fetch's implementation on its first call (a few hundred ms on a busy machine): before
// loopsight starts, so that the report shows the pipeline's stalls, not the warm-up.
await (await fetch(paymentsUrl)).text();

/** A slow store: 15 ms per write, at most 2 writes at a time (a small connection pool). */
function slowStore(limit = 2, writeMs = 15) {
  let active = 0;
  let most = 0;
  const waiting = [];
  const rows = new Map();
  return {
    async write(key, value) {
      if (active >= limit) await new Promise((resolve) => waiting.push(resolve));
      active++;
      most = Math.max(most, active);
      try {
        await sleep(writeMs);
        rows.set(key, value);
      } finally {
        active--;
        waiting.shift()?.();
      }
    },
    get size() {
      return rows.size;
    },
    get most() {
      return most;
    },
  };
}
const store = slowStore();

/** Blocks the event loop: a synchronous PDF renderer, the kind of job loopsight exists to find. */
function renderInvoicePdf(ms) {
  const end = performance.now() + ms;
  let pages = 0;
  while (performance.now() < end) pages++;
  return pages;
}

/** Pretends to send an email. */
async function sendEmail(to) {
  await sleep(20);
  return `sent to ${to}`;
}

// One monitor for the HTTP side and the worker: one place for reports and metrics.
const reports = [];
const registry = new Registry();
const monitor = createMonitor({
  promises: { mode: 'full' },
  onReport: (report) => reports.push(report),
  exporters: [prometheusExporter({ registry })],
});
const jobs = [];
monitor.on('request', (r) => {
  if (r.method === 'JOB') jobs.push(r);
});

const queue = propagate(new Queue(queueName, { connection: connect() }));
const seenByPayments = new Map();
const worker = new Worker(
  queueName,
  async (job) => {
    switch (job.name) {
      case 'charge': {
        // No header passed by hand: loopsight adds x-request-id to outbound requests in the job's scope.
        const answer = await (await fetch(`${paymentsUrl}/charge/${job.data.order}`)).json();
        seenByPayments.set(getCorrelationId(), answer.sawRequestId);
        await store.write(job.data.order, { charged: true });
        return 'charged';
      }
      case 'render-invoice':
        return renderInvoicePdf(300);
      case 'welcome-email':
        // A missing `await`: nobody learns whether the email went out. loopsight reports it as floating.
        sendEmail(job.data.to);
        return 'queued';
      case 'refund':
        throw new Error('refunds are handled by hand');
      default:
        return undefined;
    }
  },
  { connection: connect(), concurrency: 4 },
);
loopsight(worker, { monitor });

const app = express();
app.use(expressLoopsight({ monitor }));
app.use(express.json());
app.post('/orders', async (req, res) => {
  const { order } = req.body;
  await queue.add('charge', { order });
  await queue.add('render-invoice', { order });
  res.status(202).json({ order, correlationId: getCorrelationId() });
});
app.post('/orders/batch', async (req, res) => {
  const added = await queue.addBulk(req.body.orders.map((order) => ({ name: 'charge', data: { order } })));
  res.status(202).json({ jobs: added.length, correlationId: getCorrelationId() });
});
app.post('/signup', async (req, res) => {
  await queue.add('welcome-email', { to: req.body.email });
  res.status(202).json({ correlationId: getCorrelationId() });
});
app.post('/refunds', async (req, res) => {
  await queue.add('refund', { order: req.body.order }, { attempts: 1 });
  res.status(202).json({ correlationId: getCorrelationId() });
});
const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const base = `http://127.0.0.1:${server.address().port}`;
// The watchdog's thread takes a moment to come up; a block before then would be timed by no one.
await sleep(300);

async function post(path, body, id) {
  const headers = { 'content-type': 'application/json' };
  if (id) headers['x-request-id'] = id;
  const res = await fetch(base + path, { method: 'POST', headers, body: JSON.stringify(body) });
  await res.json();
  console.log(`  POST ${path.padEnd(14)} ${res.status}  x-request-id: ${res.headers.get('x-request-id')}`);
}

console.log(`loopsight BullMQ pipeline example${SHORT ? ' (short run)' : ''}\n`);
console.log(
  `Redis: ${redis ? `a private redis-server on port ${redis.port}` : 'REDIS_URL'}; worker concurrency 4; the store takes 2 writes at a time\n`,
);
console.log('Requests sent (each enqueues jobs; the id the response echoed is the one the jobs run under):');
const t0 = performance.now();
await post('/orders', { order: 'A-1001' }, 'order-1001');
await post('/signup', { email: 'ada@example.com' }, 'signup-77');
await post('/refunds', { order: 'A-0999' }, 'refund-5');
await post('/orders/batch', { orders: Array.from({ length: ORDERS }, (_, i) => `B-${i}`) }, 'batch-1');

const expected = 2 + 1 + 1 + ORDERS;
for (const end = Date.now() + 15_000; Date.now() < end; ) {
  const stalled = reports.some((r) => r.type === 'stall' && r.request?.route === 'render-invoice');
  if (jobs.length >= expected && stalled && reports.some((r) => r.type === 'promise')) break;
  await sleep(20);
}
const took = performance.now() - t0;

console.log(
  `\nJobs run (${jobs.length} of ${expected} in ${(took / 1000).toFixed(1)} s; 'request' events of method JOB: job name, outcome, time in the processor, id):`,
);
const byName = new Map();
for (const r of jobs) {
  const entry = byName.get(r.route) ?? { count: 0, failed: 0, ms: [], ids: new Set() };
  entry.count++;
  if (r.aborted) entry.failed++;
  entry.ms.push(r.durationMs);
  entry.ids.add(r.correlationId);
  byName.set(r.route, entry);
}
for (const [name, e] of byName) {
  const sorted = e.ms.sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)];
  const ids = [...e.ids];
  console.log(
    `  ${name.padEnd(15)} ${String(e.count).padStart(4)} run, ${e.failed} failed  p50 ${p50.toFixed(1).padStart(6)} ms  max ${sorted.at(-1).toFixed(1).padStart(6)} ms  id ${ids.slice(0, 2).join(', ')}${ids.length > 2 ? ', …' : ''}`,
  );
}
console.log(
  `\nThe payments service saw x-request-id: ${seenByPayments.get('order-1001')} (propagated from the request, through Redis, out of the job)`,
);
console.log(`The store saw at most ${store.most} writes at a time; it holds ${store.size} orders`);

const where = (f) =>
  `${f.functionName || '(anonymous)'} (${f.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '')}:${f.line}:${f.column})`;
console.log('\nStall reports (the loop was blocked: by what, in which job, enqueued by which request):');
for (const r of reports.filter((report) => report.type === 'stall')) {
  const who = r.request ? `${r.request.method} ${r.request.route}  id ${r.request.correlationId}` : 'no job or request';
  console.log(`  ${r.durationMs.toFixed(0)} ms  ${who}  (stack: ${r.stackSource}, ${r.inflight} in flight)`);
  if (r.culprit) console.log(`      culprit ${where(r.culprit)}`);
  else console.log(`      top ${r.stack.slice(0, 3).map(where).join(' < ')}`);
}
console.log('\nPromise reports (floating: never awaited; leaked: outlived its job; unhandled: a rejection nobody handled):');
for (const r of reports.filter((report) => report.type === 'promise')) {
  const who = r.request ? `${r.request.method} ${r.request.route}  id ${r.request.correlationId}` : 'no job or request';
  console.log(`  ${r.kind}  ${who}  (${r.ageMs} ms old)`);
  if (r.culprit) console.log(`      culprit ${where(r.culprit)}`);
}
console.log('\nJob metrics (Prometheus, the same registry a /metrics route would serve):');
const text = await registry.metrics();
for (const line of text.split('\n')) {
  if (/^loopsight_jobs_total\{/.test(line) || /^loopsight_job_duration_seconds_(sum|count)\{/.test(line)) console.log(`  ${line}`);
}
console.log(`In flight now: ${monitor.inflight().length}`);

server.close();
payments.close();
await worker.close();
await queue.close();
// Connections passed in are the caller's to close.
for (const connection of connections) connection.disconnect();
await monitor.stop();
await redis?.close();
