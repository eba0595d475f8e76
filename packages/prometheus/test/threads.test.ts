// Worker threads with their own monitor (the built @loopsight/core, test-support/fixtures/thread-worker.mjs),
// exported by the main thread's Prometheus exporter under a `thread` label.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { createMonitor, type Monitor, type StallReport } from '@loopsight/core';
import { prometheusExporter } from '@loopsight/prometheus';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../../test-support/until.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fixture = new URL('../../../test-support/fixtures/thread-worker.mjs', import.meta.url);

const open: { monitors: Monitor[]; workers: Worker[] } = { monitors: [], workers: [] };
afterEach(async () => {
  await Promise.all(open.workers.splice(0).map((w) => w.terminate()));
  await Promise.all(open.monitors.splice(0).map((m) => m.stop()));
});

function osThreads(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
}

/** The main thread's monitor with a Prometheus exporter, and a worker with its own monitor. */
async function setUp() {
  const registry = new Registry();
  const monitor = createMonitor({ promises: false, onReport: () => {}, exporters: [prometheusExporter({ registry })] });
  open.monitors.push(monitor);
  monitor.start();
  await sleep(300);
  const before = osThreads();
  const worker = new Worker(fixture, { name: 'cpu-pool' });
  open.workers.push(worker);
  const reports: StallReport[] = [];
  worker.on('message', (m: { report?: StallReport }) => {
    if (m.report) reports.push(m.report);
  });
  await once(worker, 'message');
  // Node 20 does not tell a worker its name (worker_threads.threadName is newer): the label is the id alone.
  const label = 'threadName' in (await import('node:worker_threads')) ? `${worker.threadId}:cpu-pool` : String(worker.threadId);
  return { registry, worker, reports, label, before };
}

describe('worker threads', () => {
  // Retried: on a loaded machine a pause may land late (`late-pause`, no job), as on the main thread.
  it('a worker that blocks for 300 ms is reported with its thread id, stack and job, and adds no watchdog thread', {
    retry: 2,
  }, async () => {
    const { worker, reports, before } = await setUp();
    // One OS thread more: the worker itself. Its stalls are watched by the main thread's watchdog thread.
    expect(osThreads() - before).toBe(1);
    await sleep(500);
    const blockAt = Date.now();
    worker.postMessage({ block: 300 });
    // From the block on: on Node 24 a worker may stall at its start, loading MessageEvent.
    const mine = () => reports.filter((r) => r.at >= blockAt - 50);
    await until(() => mine().length > 0);
    await sleep(200);
    expect(mine(), JSON.stringify(reports)).toHaveLength(1);
    const [report] = mine() as [StallReport];
    expect(report.thread?.id).toBe(worker.threadId);
    expect(report.durationMs).toBeGreaterThanOrEqual(250);
    expect(report.stackSource).toBe('pause');
    expect(report.culprit?.functionName).toBe('blockTheWorker');
    expect(report.request).toMatchObject({ correlationId: 'job-7', route: 'jobs:resize' });
  });

  it("exports its delay histogram, utilization and stalls under its thread label, beside the main thread's", { retry: 2 }, async () => {
    const { registry, worker, reports, label } = await setUp();
    worker.postMessage({ block: 300 });
    await until(() => reports.length > 0);
    let text = '';
    await until(async () => {
      text = await registry.metrics();
      return text.includes(`loopsight_event_loop_stalls_total{route="jobs:resize",expected="false",thread="${label}"}`);
    });
    expect(text).toContain(`loopsight_event_loop_stalls_total{route="jobs:resize",expected="false",thread="${label}"} 1`);
    expect(text).toContain(`loopsight_event_loop_stall_seconds_count{route="jobs:resize",thread="${label}"} 1`);
    // The 300 ms block is one delay sample of the worker's, in its 500 ms bucket.
    await until(async () => {
      text = await registry.metrics();
      return text.includes(`loopsight_event_loop_delay_seconds_bucket{thread="${label}",le="0.5"}`);
    });
    const bucket = (le: string) =>
      Number(new RegExp(`^loopsight_event_loop_delay_seconds_bucket\\{thread="${label}",le="${le}"\\} (\\d+)`, 'm').exec(text)?.[1]);
    expect(bucket('0.5') - bucket('0.25'), text).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(new RegExp(`^loopsight_event_loop_utilization\\{thread="${label}"\\} [0-9.]+$`, 'm'));
    // The main thread's series are there too, without the label.
    expect(text).toMatch(/^loopsight_event_loop_delay_seconds_count \d+$/m);
    expect(text).toMatch(/^loopsight_event_loop_utilization [0-9.]+$/m);
  });

  it('a worker that exits on its own, monitor running, leaves no series and no thread behind', async () => {
    const { registry, worker, reports, label, before } = await setUp();
    worker.postMessage({ block: 300 });
    await until(() => reports.length > 0);
    await until(async () => (await registry.metrics()).includes(`thread="${label}"`));
    worker.postMessage({ done: true });
    const [code] = await Promise.race([once(worker, 'exit'), sleep(5_000).then(() => ['still running'])]);
    expect(code).toBe(0);
    await until(async () => !(await registry.metrics()).includes('thread="'));
    expect(await registry.metrics()).not.toContain('thread="');
    expect(osThreads()).toBe(before);
  });

  it('a terminated worker, which says nothing, leaves no series behind once its figures stop', async () => {
    const { registry, worker, label } = await setUp();
    await until(async () => (await registry.metrics()).includes(`thread="${label}"`));
    await worker.terminate();
    // Three missed windows of 200 ms and a second.
    await until(async () => !(await registry.metrics()).includes('thread="'), 4_000);
    expect(await registry.metrics()).not.toContain('thread="');
  });
});
