import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DATA_KEY, loopsight, propagate } from '@loopsight/bullmq';
import { getCorrelationId, withCorrelationId } from '@loopsight/context';
import { createMonitor, currentScope, type PromiseReport, type RequestRecord } from '@loopsight/core';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { prometheusExporter } from '@loopsight/prometheus';
import { FlowProducer, type Job, Queue, Worker } from 'bullmq';
import express from 'express';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a JavaScript module without types
import { startRedis } from '../../../examples/start-redis.mjs';
import { startIdEcho } from '../../../test-support/id-echo.js';
import { until } from '../../../test-support/until.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let redis: { host: string; port: number; close(): Promise<void> };
let connection: { host: string; port: number };
let downstream: { url: string; close(): Promise<void> };
const closers: (() => Promise<unknown>)[] = [];
let queues = 0;

beforeAll(async () => {
  redis = await startRedis();
  connection = { host: redis.host, port: redis.port };
  downstream = await startIdEcho();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await downstream.close();
  await redis.close();
});

/** A queue (propagating) and its name; closed after the file. */
function makeQueue(): { name: string; queue: Queue } {
  const name = `q${++queues}-${process.pid}`;
  const queue = propagate(new Queue(name, { connection }));
  closers.push(() => queue.close());
  return { name, queue };
}

function makeWorker(name: string, processor: (job: Job) => Promise<unknown>, concurrency = 1): Worker {
  const worker = new Worker(name, processor, { connection, concurrency });
  closers.push(() => worker.close());
  return worker;
}

async function fetchDownstream(): Promise<string | null> {
  const res = await fetch(downstream.url);
  return (await res.json()) as string | null;
}

describe('a job added inside an Express request', () => {
  let server: Server;
  let url: string;
  const seen: { id: string | undefined; scope: unknown; downstream: string | null; data: unknown }[] = [];
  const records: RequestRecord[] = [];
  const registry = new Registry();
  let monitor: ReturnType<typeof createMonitor>;

  beforeAll(async () => {
    const { name, queue } = makeQueue();
    const app = express();
    app.use(expressLoopsight({ promises: false, loopLag: false, onReport: () => {} }));
    app.post('/orders/:n', async (req, res) => {
      const job = await queue.add(req.params.n === 'bad' ? 'refund' : 'charge', { n: req.params.n });
      res.json({ job: job.id });
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    closers.push(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    monitor = createMonitor({ promises: false, loopLag: false, onReport: () => {}, exporters: [prometheusExporter({ registry })] });
    monitor.on('request', (r) => {
      if (r.method === 'JOB') records.push(r);
    });
    closers.push(() => monitor.stop());
    const worker = makeWorker(name, async (job) => {
      const id = getCorrelationId();
      await sleep(5);
      const data = { ...job.data };
      seen.push({ id, scope: { ...currentScope() }, downstream: await fetchDownstream(), data });
      if (job.name === 'refund') throw new Error('refunds are off');
      return 'ok';
    });
    expect(loopsight(worker, { monitor })).toBe(monitor);
  });

  it('runs under the request id, in a JOB scope named by the job; its outbound call carries the id', async () => {
    const res = await fetch(`${url}/orders/7`, { method: 'POST', headers: { 'x-request-id': 'order-7' } });
    expect(res.status).toBe(200);
    expect(await until(() => seen.length === 1, 10_000)).toBe(true);
    expect(seen[0]).toMatchObject({
      id: 'order-7',
      scope: { correlationId: 'order-7', method: 'JOB', route: 'charge' },
      downstream: 'order-7',
      // The processor sees the data as it was added: the carried id is taken out.
      data: { n: '7' },
    });
    expect(await until(() => records.length === 1)).toBe(true);
    expect(records[0]).toMatchObject({ type: 'request', correlationId: 'order-7', method: 'JOB', route: 'charge', aborted: false });
    expect(records[0]?.status).toBeUndefined();
  });

  it('a failing job is a record with aborted: true, and both outcomes are in the exporter by job name', async () => {
    const res = await fetch(`${url}/orders/bad`, { method: 'POST', headers: { 'x-request-id': 'order-bad' } });
    expect(res.status).toBe(200);
    expect(await until(() => records.length === 2, 10_000)).toBe(true);
    expect(records[1]).toMatchObject({ correlationId: 'order-bad', route: 'refund', aborted: true });
    const text = await registry.metrics();
    expect(text).toContain('loopsight_jobs_total{job="charge",outcome="completed"} 1');
    expect(text).toContain('loopsight_jobs_total{job="refund",outcome="failed"} 1');
    expect(text).toMatch(/loopsight_job_duration_seconds_count\{job="charge"\} 1/);
    expect(monitor.inflight()).toEqual([]);
  });
});

it('500 jobs at concurrency 10, added with add and addBulk in their own scopes: every job sees its own id, on every hop', async () => {
  const { name, queue } = makeQueue();
  const monitor = createMonitor({ promises: false, loopLag: false, onReport: () => {} });
  closers.push(() => monitor.stop());
  let running = 0;
  let most = 0;
  const mismatches: string[] = [];
  let done = 0;
  const worker = makeWorker(
    name,
    async (job) => {
      running++;
      most = Math.max(most, running);
      const { i, want } = job.data as { i: number; want: string };
      try {
        await sleep(1 + (i % 7));
        if (getCorrelationId() !== want) mismatches.push(`${want} after a timer: ${getCorrelationId()}`);
        const echoed = await fetchDownstream();
        if (echoed !== want) mismatches.push(`${want} downstream: ${echoed}`);
        await new Promise((resolve) => setImmediate(resolve));
        if (getCorrelationId() !== want) mismatches.push(`${want} at the end: ${getCorrelationId()}`);
      } finally {
        running--;
        done++;
      }
    },
    10,
  );
  loopsight(worker, { monitor });
  const single = Array.from({ length: 250 }, (_, i) => withCorrelationId(`mix-${i}`, () => queue.add('mix', { i, want: `mix-${i}` })));
  // Every job of a bulk carries the id of the scope addBulk was called in.
  const bulk = Array.from({ length: 25 }, (_, b) =>
    withCorrelationId(`bulk-${b}`, () =>
      queue.addBulk(Array.from({ length: 10 }, (_, k) => ({ name: 'mix', data: { i: 250 + b * 10 + k, want: `bulk-${b}` } }))),
    ),
  );
  await Promise.all([...single, ...bulk]);
  expect(await until(() => done === 500, 60_000)).toBe(true);
  expect(mismatches).toEqual([]);
  expect(most).toBeLessThanOrEqual(10);
  expect(most).toBeGreaterThan(1);
  expect(await until(() => monitor.inflight().length === 0)).toBe(true);
});

it("a flow added in a scope (FlowProducer through propagate): the parent and its children run under its id; the caller's objects are unchanged", async () => {
  const { name } = makeQueue();
  const flows = propagate(new FlowProducer({ connection }));
  closers.push(() => flows.close());
  const monitor = createMonitor({ promises: false, loopLag: false, onReport: () => {} });
  closers.push(() => monitor.stop());
  const ran: [string, string | undefined][] = [];
  const worker = makeWorker(name, async (job) => {
    ran.push([job.name, getCorrelationId()]);
  });
  loopsight(worker, { monitor });
  const child = { name: 'pick', queueName: name, data: { sku: 1 } };
  const flow = {
    name: 'ship',
    queueName: name,
    data: { order: 9 },
    children: [child, { name: 'pack', queueName: name, data: { box: 'S' } }],
  };
  await withCorrelationId('flow-9', () => flows.add(flow));
  expect(await until(() => ran.length === 3, 10_000)).toBe(true);
  expect(ran.sort()).toEqual([
    ['pack', 'flow-9'],
    ['pick', 'flow-9'],
    ['ship', 'flow-9'],
  ]);
  expect(child.data).toEqual({ sku: 1 });
  expect(flow.data).toEqual({ order: 9 });
});

it('a hostile or missing id in the job data is replaced by a fresh one, counted, never used', async () => {
  const { name, queue } = makeQueue();
  const monitor = createMonitor({ promises: false, loopLag: false, onReport: () => {} });
  closers.push(() => monitor.stop());
  const ids: Record<string, string | undefined> = {};
  const datas: Record<string, unknown> = {};
  const worker = makeWorker(name, async (job) => {
    ids[job.name] = getCorrelationId();
    datas[job.name] = { ...job.data };
  });
  loopsight(worker, { monitor });
  const hostile = 'x\r\nset-cookie: a=b';
  // Added outside any scope: propagate leaves the data as it is, the hostile key included.
  await queue.add('hostile', { [DATA_KEY]: hostile, v: 1 });
  await queue.add('long', { [DATA_KEY]: 'a'.repeat(5000) });
  await queue.add('missing', { v: 2 });
  expect(await until(() => Object.keys(ids).length === 3, 10_000)).toBe(true);
  for (const job of ['hostile', 'long', 'missing']) expect(ids[job]).toMatch(UUID);
  expect(datas.hostile).toEqual({ v: 1 });
  const rejected = monitor.counters().correlationIdsRejected;
  expect(rejected.invalid).toBe(1);
  expect(rejected.too_long).toBe(1);
});

it('a floating promise in a processor is reported with the job name and the enqueuing id', async () => {
  const { name, queue } = makeQueue();
  const reports: PromiseReport[] = [];
  const monitor = createMonitor({ loopLag: false, promises: { mode: 'full' }, onReport: () => {} });
  monitor.on('promise', (r) => reports.push(r));
  closers.push(() => monitor.stop());
  async function sendReceipt(): Promise<void> {
    await sleep(20);
  }
  const worker = makeWorker(name, async () => {
    // A missing await: nobody learns whether the receipt went out.
    sendReceipt();
    await sleep(5);
  });
  loopsight(worker, { monitor });
  await withCorrelationId('float-1', () => queue.add('receipt', { to: 'a@b.c' }));
  expect(await until(() => reports.some((r) => r.request?.correlationId === 'float-1'), 10_000), JSON.stringify(reports)).toBe(true);
  const report = reports.find((r) => r.request?.correlationId === 'float-1');
  expect(report).toMatchObject({ kind: 'floating', request: { correlationId: 'float-1', method: 'JOB', route: 'receipt' } });
  expect(report?.culprit?.functionName).toBe('sendReceipt');
});

it('closing the worker ends the scopes of the jobs it abandons and stops the monitor made for it; monitor.stop() unpatches', async () => {
  const { name, queue } = makeQueue();
  let started = 0;
  const worker = new Worker(
    name,
    async () => {
      started++;
      await new Promise(() => {});
    },
    { connection, concurrency: 3 },
  );
  const monitor = loopsight(worker, { promises: false, loopLag: false, onReport: () => {} });
  const records: RequestRecord[] = [];
  monitor.on('request', (r) => records.push(r));
  await withCorrelationId('hang', () => queue.addBulk([1, 2, 3].map((i) => ({ name: 'hang', data: { i } }))));
  expect(await until(() => started === 3, 10_000)).toBe(true);
  expect(monitor.inflight().map((s) => s.route)).toEqual(['hang', 'hang', 'hang']);
  await worker.close(true);
  expect(monitor.inflight()).toEqual([]);
  expect(records.map((r) => [r.route, r.correlationId, r.aborted])).toEqual([
    ['hang', 'hang', true],
    ['hang', 'hang', true],
    ['hang', 'hang', true],
  ]);
  expect(monitor.running).toBe(false);
  expect(Object.hasOwn(worker, 'callProcessJob')).toBe(false);

  // A shared monitor: its stop() unpatches the worker, which then runs jobs without a scope.
  const other = makeQueue();
  const shared = createMonitor({ promises: false, loopLag: false, onReport: () => {} });
  const scopes: unknown[] = [];
  const second = makeWorker(other.name, async () => {
    scopes.push(currentScope()?.route);
  });
  loopsight(second, { monitor: shared });
  await other.queue.add('before', {});
  expect(await until(() => scopes.length === 1, 10_000)).toBe(true);
  await shared.stop();
  expect(Object.hasOwn(second, 'callProcessJob')).toBe(false);
  await other.queue.add('after', {});
  expect(await until(() => scopes.length === 2, 10_000)).toBe(true);
  expect(scopes).toEqual(['before', undefined]);
});

it('refuses what is not a worker, and a worker monitored twice', () => {
  expect(() => loopsight({} as Worker)).toThrow(/expects a BullMQ 5 or 6 Worker/);
  expect(() => propagate({} as Queue)).toThrow(/expects a BullMQ Queue or FlowProducer/);
  const worker = new Worker('never', null, { connection, autorun: false });
  closers.push(() => worker.close());
  const monitor = createMonitor({ promises: false, loopLag: false });
  closers.push(() => monitor.stop());
  loopsight(worker, { monitor });
  expect(() => loopsight(worker, { monitor })).toThrow(/monitored already/);
});
