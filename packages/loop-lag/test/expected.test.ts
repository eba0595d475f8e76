import type { Report, StallReport } from '@loopsight/core';
import { prometheusExporter } from '@loopsight/prometheus';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { frameworks, type TestApp } from '../../../test-support/apps.js';
import { until } from '../../../test-support/until.js';

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
    await until(() => stalls.some((s) => s.request?.correlationId === id), 5_000, 50);
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

describe('in one process, with monitor.run()', () => {
  const spinFor = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // busy
    }
  };
  // Named functions that block in their own frame: each is the culprit of its stall.
  function warmCache(ms: number) {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // busy
    }
  }
  function undeclaredWork(ms: number) {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // busy
    }
  }

  async function monitorWith(loopLag: object) {
    const { createMonitor } = await import('@loopsight/core');
    const lines: Report[] = [];
    const stalls: StallReport[] = [];
    const monitor = createMonitor({ promises: false, loopLag: { maxStacksPerMinute: 1000, ...loopLag }, onReport: (r) => lines.push(r) });
    monitor.on('stall', (r) => stalls.push(r));
    monitor.start();
    // Until the watchdog's thread is up (seconds on a loaded machine), a block is timed without a
    // stack or a request: a warm-up block of its own id, until one comes with a stack. The tests
    // pick their stalls by request id, so a late warm-up report is never theirs.
    const warmedUp = () => stalls.some((s) => s.request?.correlationId === 'warm-up' && s.stack.length > 0);
    await sleep(300);
    for (let i = 0; i < 5 && !warmedUp(); i++) {
      monitor.run({ correlationId: 'warm-up' }, () => undeclaredWork(150));
      await until(warmedUp, 2_000, 25);
    }
    const settle = async (id: string, n: number) => {
      await until(() => stalls.filter((s) => s.request?.correlationId === id).length >= n, 5_000, 50);
      await sleep(200);
    };
    /**
     * Blocks `declaredMs` inside expectBlocking(), then `undeclaredMs` more in the same turn, as
     * request `id`; resolves when `n` of its stalls came, with them and when the declared work ended.
     */
    const declaredThenUndeclared = async (id: string, declaredMs: number, undeclaredMs: number, n: number) => {
      const { expectBlocking } = await import('@loopsight/core');
      let declaredEnd = 0;
      monitor.run({ correlationId: id }, () => {
        expectBlocking(() => spinFor(declaredMs));
        declaredEnd = Date.now();
        undeclaredWork(undeclaredMs);
      });
      await settle(id, n);
      return { declaredEnd, mine: stalls.filter((s) => s.request?.correlationId === id) };
    };
    return { monitor, lines, stalls, settle, declaredThenUndeclared };
  }

  it('loopLag.expected.when sees the finished report: a predicate on culprit matches (the docs example)', async () => {
    const { monitor, lines, stalls, settle } = await monitorWith({
      expected: { when: (r: StallReport) => r.culprit?.functionName === 'warmCache' },
    });
    try {
      monitor.run({ correlationId: 'warm' }, () => warmCache(300));
      await settle('warm', 1);
      monitor.run({ correlationId: 'other' }, () => undeclaredWork(300));
      await settle('other', 1);
      const warm = stalls.filter((s) => s.request?.correlationId === 'warm');
      expect(warm, JSON.stringify(stalls)).toHaveLength(1);
      expect(warm[0]).toMatchObject({ expected: true, stack: [], stackSkipped: 'expected' });
      expect(lines.filter((r) => r.type === 'stall' && r.request?.correlationId === 'warm')).toEqual([]);
      // Another function is not expected: its stall keeps its stack, culprit and report line.
      const other = stalls.filter((s) => s.request?.correlationId === 'other');
      expect(other[0]?.expected).toBeUndefined();
      expect(other[0]?.culprit?.functionName).toBe('undeclaredWork');
      expect(lines.filter((r) => r.type === 'stall' && r.request?.correlationId === 'other')).toHaveLength(1);
    } finally {
      await monitor.stop();
    }
  });

  it('expectBlocking() covers only its own time: 150 ms declared then 300 ms undeclared in the same turn is an unexpected stall of about 300 ms', async () => {
    const { monitor, lines, declaredThenUndeclared } = await monitorWith({});
    try {
      const { declaredEnd, mine } = await declaredThenUndeclared('mixed', 150, 300, 2);
      const declared = mine.filter((s) => s.expected);
      const rest = mine.filter((s) => !s.expected);
      expect(declared, JSON.stringify(mine)).toHaveLength(1);
      expect(declared[0]?.durationMs).toBeGreaterThanOrEqual(100);
      expect(declared[0]?.durationMs).toBeLessThan(300);
      expect(rest, JSON.stringify(mine)).toHaveLength(1);
      const [stall] = rest as [StallReport];
      // About 300 ms, timed from the end of the declared block: not the 450 ms of the whole turn,
      // not the declared 150. Its end is when the loop next ran, which a loaded machine delays (426
      // ms seen in CI); where it began is not.
      expect(stall.durationMs).toBeGreaterThanOrEqual(220);
      expect(Math.abs(stall.at - declaredEnd), JSON.stringify(stall)).toBeLessThan(50);
      expect(stall.culprit?.functionName).toBe('undeclaredWork');
      expect(['pause', 'late-pause']).toContain(stall.stackSource);
      const line = lines.filter((r) => r.type === 'stall' && r.request?.correlationId === 'mixed');
      expect(line).toHaveLength(1);
      expect(line[0]).not.toHaveProperty('expected');
    } finally {
      await monitor.stop();
    }
  });

  it('a watchdog that looks only after the declared work ended (a threshold longer than it, or a starved thread) still times the stall from its end', async () => {
    // 80 ms declared, under the 100 ms threshold: the watchdog's first look at this stall comes
    // after expectBlocking() returned, as it does when its thread is starved during a longer one.
    const { monitor, declaredThenUndeclared } = await monitorWith({});
    try {
      const { declaredEnd, mine } = await declaredThenUndeclared('late-look', 80, 300, 1);
      // Under the threshold, the declared part is no stall, unless a loaded machine ran the loop
      // late just before it (the time since the last beat counts: 100 ms seen on Node 22 in CI);
      // then it is an expected one, no longer than that. The rest is a stall from where it began.
      for (const declared of mine.filter((s) => s.expected)) expect(declared.durationMs, JSON.stringify(mine)).toBeLessThan(200);
      const rest = mine.filter((s) => !s.expected);
      expect(rest, JSON.stringify(mine)).toHaveLength(1);
      const [stall] = rest as [StallReport];
      expect(Math.abs(stall.at - declaredEnd), JSON.stringify(stall)).toBeLessThan(40);
      expect(stall.durationMs).toBeGreaterThanOrEqual(220);
      expect(stall.culprit?.functionName).toBe('undeclaredWork');
    } finally {
      await monitor.stop();
    }
  });
});
