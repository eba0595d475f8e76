import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IGNORING_WRITE, slowClient, TOTAL_BYTES } from '../../../test-support/backpressure.js';
import { until } from '../../../test-support/until.js';
import { fixture, freePort, type RunningApp, startApp } from './helpers.js';

interface Line {
  loopsight: string;
  kind?: string;
  request?: { correlationId: string };
  culprit?: { url: string; line: number; functionName: string };
  bufferedBytes?: number;
}

/** An unmodified node:http app under `node --import @loopsight/register`: its reports on stderr, its metrics on the port. */
describe('node --import @loopsight/register: backpressure', () => {
  let app: RunningApp;
  let metricsPort: number;
  beforeAll(async () => {
    metricsPort = await freePort();
    app = await startApp('import', [fixture('app.mjs'), 'http'], { LOOPSIGHT_METRICS_PORT: String(metricsPort) });
  });
  afterAll(async () => {
    expect(await app.close()).toBe(0);
  });
  const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();

  it("reports the route that ignores write()'s false to a slow client once, with the id and the line of the write", async () => {
    const client = await slowClient(app.url, '/stream/ignore', { 'x-request-id': 'preload-ignore' });
    try {
      const report = await app.waitFor<Line>('loopsight', (l) => l.loopsight === 'backpressure');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(app.json<Line>('loopsight').filter((l) => l.loopsight === 'backpressure')).toHaveLength(1);
      expect(report).toMatchObject({ kind: 'ignored', request: { correlationId: 'preload-ignore' } });
      expect(report.culprit).toMatchObject({ url: IGNORING_WRITE.file, line: IGNORING_WRITE.line, functionName: 'writeIgnoring' });
      expect(report.bufferedBytes).toBeGreaterThan(1_048_576);
    } finally {
      client.destroy();
    }
    expect(await metrics()).toMatch(/loopsight_backpressure_total\{kind="ignored",route="[^"]+"\} 1/);
  });

  it("reports nothing for the route awaiting 'drain', and serves the drain-wait histogram", async () => {
    const before = app.json<Line>('loopsight').length;
    const client = await slowClient(app.url, '/stream/await', { 'x-request-id': 'preload-await' });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await client.finish()).toBeGreaterThan(TOTAL_BYTES);
    // Stalls of a loaded machine may be reported meanwhile: only backpressure is looked at.
    expect(
      app
        .json<Line>('loopsight')
        .slice(before)
        .filter((l) => l.loopsight === 'backpressure'),
    ).toEqual([]);
    let count = 0;
    expect(
      await until(async () => {
        count = Number(/loopsight_drain_wait_seconds_count\{route="[^"]+"\} (\d+)/.exec(await metrics())?.[1] ?? 0);
        return count > 5;
      }),
    ).toBe(true);
  });
});
