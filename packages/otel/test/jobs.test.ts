import { createMonitor } from '@loopsight/core';
import { otelExporter } from '@loopsight/otel';
import { afterEach, expect, it } from 'vitest';
import { sdkMeter } from './sdk-meter.js';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

it("queue jobs (the monitor's 'request' records of method JOB) are counted by name and outcome, with their duration; requests are not", async () => {
  const { meterProvider, collect } = sdkMeter(stops);
  const monitor = createMonitor({ loopLag: false, promises: false, exporters: [otelExporter({ meterProvider, traces: false })] });
  monitor.start();
  stops.push(() => monitor.stop());
  await monitor.run({ method: 'JOB', route: 'charge' }, async () => {});
  await monitor.run({ method: 'JOB', route: 'charge' }, async () => {});
  await expect(monitor.run({ method: 'JOB', route: 'refund' }, async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
  await monitor.run({ method: 'GET', route: '/users/:id' }, async () => {});
  const metrics = await collect();
  const jobs = metrics.get('loopsight.jobs');
  expect(jobs?.descriptor.unit).toBe('{job}');
  const points = (jobs?.dataPoints ?? []).map((p) => [p.attributes['loopsight.job.name'], p.attributes['loopsight.job.outcome'], p.value]);
  expect(points.sort()).toEqual([
    ['charge', 'completed', 2],
    ['refund', 'failed', 1],
  ]);
  const duration = metrics.get('loopsight.job.duration');
  expect(duration?.descriptor.unit).toBe('s');
  expect(duration?.dataPoints.map((p) => p.attributes['loopsight.job.name']).sort()).toEqual(['charge', 'refund']);
});
