import type { Report, StallReport } from '@loopsight/core';
import { prometheusExporter } from '@loopsight/prometheus';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { frameworks, type TestApp } from '../../../test-support/apps.js';

// Blocking the application declared: counted and timed, marked expected, with no pause (no stack)
// and no report line; an undeclared block of the same length still gets both.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const apps: TestApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function start(name: string, loopLag: object = {}) {
  const framework = frameworks.find((f) => f.name === name);
  if (!framework) throw new Error(name);
  const lines: Report[] = [];
  const stalls: StallReport[] = [];
  const registry = new Registry();
  const app = await framework.start({
    promises: false,
    loopLag: { maxStacksPerMinute: 1000, ...loopLag },
    onReport: (r) => lines.push(r),
    exporters: [prometheusExporter({ registry })],
  });
  apps.push(app);
  app.monitor.on('stall', (r) => stalls.push(r));
  await sleep(300);
  const get = async (path: string, id: string) => {
    const res = await request(`${app.url}${path}`, { headers: { 'x-request-id': id } });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    // The report comes once the loop runs again; a loaded machine may deliver it late.
    for (const end = Date.now() + 5_000; !stalls.some((s) => s.request?.correlationId === id); ) {
      if (Date.now() > end) break;
      await sleep(50);
    }
    await sleep(200);
  };
  const counted = async (expected: 'true' | 'false') => {
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'loopsight_event_loop_stalls_total');
    return (metric?.values ?? []).filter((v) => v.labels.expected === expected).reduce((n, v) => n + v.value, 0);
  };
  return { app, lines, stalls, get, counted };
}

describe.each(['express 5', 'fastify 5', 'koa 3'])('%s', (name) => {
  it('a 300 ms block inside expectBlocking(): timed and counted as expected, no pause, no report line', async () => {
    const { lines, stalls, get, counted } = await start(name);
    await get('/expected/300', 'exp-1');
    const expected = stalls.filter((s) => s.expected);
    expect(expected, JSON.stringify(stalls)).toHaveLength(1);
    const [stall] = expected as [StallReport];
    expect(stall.durationMs).toBeGreaterThanOrEqual(150);
    // No pause was taken: no stack, no delay, no request read from a paused frame.
    expect(stall).toMatchObject({ stack: [], stackSource: 'none', stackSkipped: 'expected' });
    expect(stall.pauseDelayMs).toBeUndefined();
    expect(stall.culprit).toBeUndefined();
    // The request is the one expectBlocking() was called in, known without a pause.
    expect(stall.request).toMatchObject({ correlationId: 'exp-1', route: '/expected/:ms' });
    expect(stall.requestSource).toBe('expectBlocking');
    expect(lines.filter((r) => r.type === 'stall' && r.expected)).toEqual([]);
    expect(await counted('true')).toBe(1);

    // The same block undeclared is a stall with its stack and its line.
    await get('/block/300', 'exp-2');
    const plain = stalls.filter((s) => s.request?.correlationId === 'exp-2');
    expect(plain, JSON.stringify(stalls)).toHaveLength(1);
    expect(plain[0]?.culprit?.functionName).toBe('blockTheLoop');
    expect(lines.filter((r) => r.type === 'stall' && r.request?.correlationId === 'exp-2')).toHaveLength(1);
    expect(await counted('false')).toBeGreaterThanOrEqual(1);
  });

  it('loopLag.expected: a route and a predicate make stalls expected, stack dropped, no report line', async () => {
    const { lines, stalls, get, counted } = await start(name, {
      expected: { routes: ['/block/:ms'], when: (r: StallReport) => r.request?.correlationId === 'by-predicate' },
    });
    await get('/block/250', 'by-route');
    await get('/native/pbkdf2', 'by-predicate');
    const mine = stalls.filter((s) => ['by-route', 'by-predicate'].includes(s.request?.correlationId ?? ''));
    expect(mine, JSON.stringify(stalls)).toHaveLength(2);
    for (const stall of mine) expect(stall).toMatchObject({ expected: true, stack: [], stackSkipped: 'expected' });
    expect(lines.filter((r) => r.type === 'stall' && mine.some((m) => m.request?.correlationId === r.request?.correlationId))).toEqual([]);
    expect(await counted('true')).toBe(2);
  });
});

it('expectBlocking returns what its function returns, rethrows what it throws, and takes only functions', async () => {
  const { expectBlocking } = await import('@loopsight/core');
  expect(expectBlocking(() => 42)).toBe(42);
  expect(() =>
    expectBlocking(() => {
      throw new Error('boom');
    }),
  ).toThrow('boom');
  expect(() => expectBlocking('x' as never)).toThrow(TypeError);
});
