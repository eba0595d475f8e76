import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMonitor } from '@loopsight/core';
import { otelExporter } from '@loopsight/otel';
import type { Histogram } from '@opentelemetry/sdk-metrics';
import { Pool } from 'undici';
import { afterEach, expect, it } from 'vitest';
import { sdkMeter } from './sdk-meter.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

it('fetch() waits for a connection are recorded as loopsight.outbound.queue.wait_time, by origin', async () => {
  const slow = createServer((_req, res) => setTimeout(() => res.end('ok'), 100));
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  stops.push(async () => {
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
  });
  const origin = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const { meterProvider, collect } = sdkMeter(stops);
  const monitor = createMonitor({ loopLag: false, promises: false, exporters: [otelExporter({ meterProvider, traces: false })] });
  monitor.start();
  stops.push(() => monitor.stop());
  const pool = new Pool(origin, { connections: 2 });
  stops.push(() => pool.close());
  await Promise.all(
    Array.from({ length: 20 }, () => fetch(`${origin}/items/7?x=1`, { dispatcher: pool } as RequestInit).then((r) => r.text())),
  );
  let point: { attributes: Record<string, unknown>; value: Histogram } | undefined;
  for (let i = 0; i < 100 && (point?.value.count ?? 0) < 20; i++) {
    await sleep(20);
    const metric = (await collect()).get('loopsight.outbound.queue.wait_time');
    expect(metric?.descriptor.unit ?? 's').toBe('s');
    point = metric?.dataPoints[0] as typeof point;
  }
  expect(point?.attributes).toEqual({ 'loopsight.outbound.origin': origin });
  expect(point?.value.count).toBe(20);
  // Request i waits about i / 2 × 100 ms: 9.5 s in all, 0.9 s for the last; generous margins.
  expect(point?.value.sum).toBeGreaterThan(3);
  expect(point?.value.max).toBeGreaterThan(0.5);
  expect(point?.value.buckets.boundaries).toContain(0.5);
});
