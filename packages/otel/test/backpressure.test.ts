import { otelExporter } from '@loopsight/otel';
import type { Histogram } from '@opentelemetry/sdk-metrics';
import { afterEach, expect, it } from 'vitest';
import { slowClient } from '../../../test-support/backpressure.js';
import { streamingApps } from '../../../test-support/backpressure-suite.js';
import { until } from '../../../test-support/until.js';
import { sdkMeter } from './sdk-meter.js';

const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

it('backpressure reports are counted by kind and route, drain waits timed by route, buffered bytes observed', async () => {
  const { meterProvider, collect } = sdkMeter(stops);
  let reports = 0;
  const app = await streamingApps.express({
    loopLag: false,
    promises: false,
    exporters: [otelExporter({ meterProvider, traces: false })],
    onReport: (r) => {
      if (r.type === 'backpressure') reports++;
    },
  });
  stops.push(() => app.close());
  const ignoring = await slowClient(app.url, '/stream/ignore');
  expect(await until(() => reports === 1, 10_000)).toBe(true);
  const during = await collect();
  const buffered = during.get('loopsight.backpressure.buffered');
  expect(buffered?.descriptor.unit).toBe('By');
  expect(Number(buffered?.dataPoints[0]?.value)).toBeGreaterThan(1_048_576);
  ignoring.destroy();
  const awaiting = await slowClient(app.url, '/stream/await');
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await awaiting.finish();

  const metrics = await collect();
  const counted = metrics.get('loopsight.backpressure');
  expect(counted?.descriptor.unit).toBe('{report}');
  expect(counted?.dataPoints.map((p) => [p.attributes['loopsight.backpressure.kind'], p.attributes['http.route'], p.value])).toEqual([
    ['ignored', '/stream/:mode', 1],
  ]);
  const waits = metrics.get('loopsight.drain.wait');
  expect(waits?.descriptor.unit).toBe('s');
  const point = waits?.dataPoints.find((p) => p.attributes['http.route'] === '/stream/:mode');
  expect((point?.value as Histogram | undefined)?.count).toBeGreaterThan(5);
});
