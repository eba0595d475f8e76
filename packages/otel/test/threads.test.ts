// A worker thread with its own monitor (the built @loopsight/core, test-support/fixtures/thread-worker.mjs),
// exported by the main thread's OTel exporter with thread.id and thread.name attributes.
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { createMonitor, type Monitor, type StallReport } from '@loopsight/core';
import { otelExporter } from '@loopsight/otel';
import type { DataPoint, Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../../test-support/until.js';
import { sdkMeter } from './sdk-meter.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fixture = new URL('../../../test-support/fixtures/thread-worker.mjs', import.meta.url);
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

describe('worker threads', () => {
  // Retried: on a loaded machine a pause may land late (`late-pause`, no route), as on the main thread.
  it("a worker's loop delay, utilization and stalls carry thread.id and thread.name; they go when it exits", { retry: 2 }, async () => {
    const { meterProvider, collect } = sdkMeter(stops);
    const monitor: Monitor = createMonitor({ promises: false, onReport: () => {}, exporters: [otelExporter({ meterProvider })] });
    stops.push(() => monitor.stop());
    monitor.start();
    await sleep(300);

    const worker = new Worker(fixture, { name: 'cpu-pool' });
    stops.unshift(() => worker.terminate());
    const reports: StallReport[] = [];
    worker.on('message', (m: { report?: StallReport }) => {
      if (m.report) reports.push(m.report);
    });
    await once(worker, 'message');
    worker.postMessage({ block: 300 });
    await until(() => reports.length > 0, 5_000, 25);
    expect(reports[0]?.thread?.id).toBe(worker.threadId);

    const ofWorker = (points: DataPoint<unknown>[] | undefined) =>
      (points ?? []).filter((p) => p.attributes['thread.id'] === worker.threadId);
    let metrics = new Map<string, MetricData>();
    // The worker's window is 200 ms: its p99 shows the block for one window, so every collection is looked at.
    let maxP99 = 0;
    for (
      const end = Date.now() + 5_000;
      Date.now() < end &&
      !(
        maxP99 >= 0.25 &&
        ofWorker(metrics.get('loopsight.eventloop.stalls')?.dataPoints).some((p) => p.attributes['http.route'] === 'jobs:resize')
      );
      await sleep(20)
    ) {
      metrics = await collect();
      for (const p of ofWorker(metrics.get('nodejs.eventloop.delay.p99')?.dataPoints)) maxP99 = Math.max(maxP99, p.value as number);
    }
    const ofJob = (points: DataPoint<unknown>[] | undefined) =>
      ofWorker(points).filter((p) => p.attributes['http.route'] === 'jobs:resize');
    const [stalls] = ofJob(metrics.get('loopsight.eventloop.stalls')?.dataPoints);
    expect(stalls?.value).toBe(1);
    const name = 'threadName' in (await import('node:worker_threads')) ? 'cpu-pool' : '';
    expect(stalls?.attributes['thread.name']).toBe(name);
    const [duration] = ofJob(metrics.get('loopsight.eventloop.stall.duration')?.dataPoints) as DataPoint<Histogram>[];
    expect(duration?.value.count).toBe(1);
    expect(duration?.value.sum).toBeGreaterThanOrEqual(0.25);
    expect(maxP99).toBeGreaterThanOrEqual(0.25);
    expect(ofWorker(metrics.get('nodejs.eventloop.utilization')?.dataPoints)).toHaveLength(1);
    // The main thread's points are there too, without thread attributes.
    expect(metrics.get('nodejs.eventloop.delay.p99')?.dataPoints.some((p) => p.attributes['thread.id'] === undefined)).toBe(true);

    worker.postMessage({ done: true });
    const [code] = await Promise.race([once(worker, 'exit'), sleep(5_000).then(() => ['still running'])]);
    expect(code).toBe(0);
    await sleep(100);
    metrics = await collect();
    expect(ofWorker(metrics.get('nodejs.eventloop.delay.p99')?.dataPoints)).toHaveLength(0);
    expect(ofWorker(metrics.get('nodejs.eventloop.utilization')?.dataPoints)).toHaveLength(0);
  });
});
