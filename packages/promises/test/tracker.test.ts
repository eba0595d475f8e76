import { AsyncLocalStorage } from 'node:async_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { PromiseReport } from '@loopsight/core';
import { createPromiseTracker, detach, type TrackedPromiseReport } from '@loopsight/promises';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { frameworks, type PromiseApp } from './apps.js';
import { audit } from './scenarios.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const [, express5, , fastify5] = frameworks;

function runner(name: string): Promise<unknown> {
  if (name === 'floats') {
    audit(5);
    return Promise.resolve('sent');
  }
  if (name === 'many') return Promise.all(Array.from({ length: 50 }, () => audit(50)));
  return audit(1);
}

async function hit(app: PromiseApp, agent: Agent, name: string, id: string): Promise<void> {
  const res = await request(`${app.url}/run/${name}`, { dispatcher: agent, headers: { 'x-request-id': id } });
  await res.body.dump();
}

describe('with a monitor', () => {
  let app: PromiseApp | undefined;
  let agent: Agent | undefined;
  afterEach(async () => {
    await agent?.close();
    await app?.close();
    app = agent = undefined;
  });

  for (const framework of [express5, fastify5]) {
    it(`serves 5,000 requests in full mode with a bounded heap, and tracks nothing once they are done (${framework?.name})`, {
      timeout: 120_000,
    }, async () => {
      app = await framework?.start({ loopLag: false, promises: { mode: 'full' }, onReport: () => {} }, runner);
      agent = new Agent({ connections: 50 });
      const reports: PromiseReport[] = [];
      app?.monitor.on('promise', (r) => reports.push(r));
      const a = app as PromiseApp;
      // Warm up, so that the baseline holds what any server holds after its first requests.
      for (let i = 0; i < 200; i++) await hit(a, agent, 'ok', `warm-${i}`);
      gc();
      const before = process.memoryUsage().heapUsed;
      let peak = 0;
      for (let batch = 0; batch < 100; batch++) {
        const requests = Promise.all(Array.from({ length: 50 }, (_, i) => hit(a, agent as Agent, 'ok', `mem-${batch}-${i}`)));
        await sleep(1);
        peak = Math.max(peak, a.monitor.counters().promises?.tracked ?? 0);
        await requests;
      }
      await sleep(200);
      gc();
      const grownMb = (process.memoryUsage().heapUsed - before) / 1024 / 1024;
      const stats = a.monitor.counters().promises;
      expect(grownMb).toBeLessThan(20);
      expect(peak).toBeGreaterThan(0);
      expect(stats?.tracked).toBeLessThanOrEqual(5);
      expect(stats?.dropped).toBe(0);
      expect(reports).toEqual([]);
    });
  }

  it('in sampled mode, catches a floating promise that recurs on every request within a few windows, with hooks off in between', async () => {
    app = await express5?.start({ loopLag: false, promises: { sampleWindowMs: 100, sampleIntervalMs: 500 }, onReport: () => {} }, runner);
    agent = new Agent();
    const a = app as PromiseApp;
    const reports: PromiseReport[] = [];
    a.monitor.on('promise', (r) => reports.push(r));
    // Start outside the first window (it opens at start), then a request every 20 ms.
    await sleep(150);
    let sawOff = false;
    const started = Date.now();
    for (let i = 0; reports.length === 0 && Date.now() - started < 3_000; i++) {
      await hit(a, agent, 'floats', `sampled-${i}`);
      if (a.monitor.counters().promises?.sampling === false) sawOff = true;
      await sleep(20);
    }
    await sleep(100);
    expect(reports[0]).toMatchObject({ kind: 'floating', request: { correlationId: expect.stringMatching(/^sampled-/) } });
    expect(reports[0]?.stack[0]?.functionName).toBe('audit');
    expect(sawOff).toBe(true);
    expect(a.monitor.counters().promises?.windows).toBeGreaterThanOrEqual(2);
  });

  it('reports one floating promise per creation site per minute, and counts the rest', async () => {
    app = await express5?.start({ loopLag: false, promises: { mode: 'full' }, onReport: () => {} }, runner);
    agent = new Agent();
    const a = app as PromiseApp;
    const reports: PromiseReport[] = [];
    a.monitor.on('promise', (r) => reports.push(r));
    for (let i = 0; i < 5; i++) await hit(a, agent, 'floats', `repeat-${i}`);
    await sleep(300);
    expect(reports.map((r) => [r.kind, r.request?.correlationId])).toEqual([['floating', 'repeat-0']]);
    expect(a.monitor.counters().promises).toMatchObject({ reported: { floating: 1 }, suppressed: { floating: 4 } });
  });

  it('holds a hard cap on tracked promises and counts what it dropped', async () => {
    app = await express5?.start({ loopLag: false, promises: { mode: 'full', maxTracked: 20 }, onReport: () => {} }, runner);
    agent = new Agent();
    const a = app as PromiseApp;
    // Read while the request's 50 promises are pending, however late a loaded machine starts it.
    let done = false;
    const pending = hit(a, agent, 'many', 'cap-1').finally(() => {
      done = true;
    });
    let mostTracked = 0;
    while (!done) {
      mostTracked = Math.max(mostTracked, a.monitor.counters().promises?.tracked ?? 0);
      await sleep(2);
    }
    await pending;
    const after = a.monitor.counters().promises;
    expect(mostTracked).toBeGreaterThan(0);
    expect(mostTracked).toBeLessThanOrEqual(20);
    expect(after?.dropped).toBeGreaterThan(0);
    expect(after?.maxTracked).toBe(20);
  });
});

describe('the tracker alone', () => {
  const als = new AsyncLocalStorage<{ id: string }>();

  function tracker(reports: TrackedPromiseReport<{ id: string }>[], extra: object = {}) {
    return createPromiseTracker<{ id: string }>({
      mode: 'full',
      leakAfterMs: 100,
      getScope: () => als.getStore(),
      onReport: (r) => reports.push(r),
      ...extra,
    });
  }

  it('survives a throwing frameFilter: every promise is still decided and uncounted, the failure said once', async () => {
    const reports: TrackedPromiseReport<{ id: string }>[] = [];
    const errors: string[] = [];
    const t = tracker(reports, {
      frameFilter: () => {
        throw new Error('filter broke');
      },
      onError: (what: string) => errors.push(what),
    });
    t.start();
    for (let r = 0; r < 20; r++) {
      const scope = { id: `filter-${r}` };
      als.run(scope, () => {
        // Settled and never observed (floating), and pending past the request (leaked).
        for (let i = 0; i < 5; i++) Promise.resolve(i);
        new Promise((resolve) => setTimeout(resolve, 300));
      });
      t.scopeEnded(scope);
    }
    await sleep(400);
    const stats = t.stats();
    t.stop();
    expect(stats.tracked).toBe(0);
    expect(reports.length).toBeGreaterThan(0);
    expect(errors).toEqual(['promises.frameFilter threw']);
  });

  it('never keeps a promise alive', async () => {
    const reports: TrackedPromiseReport<{ id: string }>[] = [];
    const t = tracker(reports);
    t.start();
    let collected = 0;
    const registry = new FinalizationRegistry(() => collected++);
    const scope = { id: 'weak-1' };
    als.run(scope, () => {
      for (let i = 0; i < 100; i++) {
        // Pending forever and dropped: nothing but the tracker could still hold them.
        const p = new Promise(() => {});
        registry.register(p, i);
        p.then(() => {});
      }
    });
    for (let i = 0; i < 10 && collected < 100; i++) {
      gc();
      await sleep(10);
    }
    t.stop();
    expect(collected).toBe(100);
  });

  it('stop() undoes start(): hooks, the emit wrapper, the listener, the timers; both are idempotent', async () => {
    const reports: TrackedPromiseReport<{ id: string }>[] = [];
    const emit = process.emit;
    const monitors = process.listenerCount('uncaughtExceptionMonitor');
    const t = tracker(reports);
    t.start();
    t.start();
    expect(process.emit).not.toBe(emit);
    expect(process.listenerCount('uncaughtExceptionMonitor')).toBe(monitors + 1);
    t.stop();
    t.stop();
    expect(process.emit).toBe(emit);
    expect(process.listenerCount('uncaughtExceptionMonitor')).toBe(monitors);
    const scope = { id: 'after-stop' };
    als.run(scope, () => void audit(1));
    t.scopeEnded(scope);
    await sleep(150);
    expect(reports).toEqual([]);
    expect(t.stats()).toMatchObject({ tracked: 0, sampling: false });
    // And it can be started again.
    t.start();
    const again = { id: 'restarted' };
    als.run(again, () => void audit(1));
    await sleep(10);
    t.scopeEnded(again);
    t.stop();
    expect(reports.map((r) => [r.kind, r.request?.id])).toEqual([['floating', 'restarted']]);
  });

  it('detach() marks fire-and-forget work: no floating, no leaked report', async () => {
    const reports: TrackedPromiseReport<{ id: string }>[] = [];
    const t = tracker(reports);
    t.start();
    const scope = { id: 'detached' };
    als.run(scope, () => {
      detach(audit(1));
      detach(audit(400).catch(() => {}));
    });
    await sleep(10);
    t.scopeEnded(scope);
    await sleep(300);
    t.stop();
    expect(reports).toEqual([]);
  });

  it('shows node_modules and node: frames when frameFilter says they are yours', async () => {
    const reports: TrackedPromiseReport<{ id: string }>[] = [];
    const t = tracker(reports, { frameFilter: () => true });
    t.start();
    const scope = { id: 'all-frames' };
    als.run(scope, () => void audit(1));
    await sleep(10);
    t.scopeEnded(scope);
    t.stop();
    expect(reports).toHaveLength(1);
    expect(reports[0]?.stack.some((f) => f.url.includes('node_modules') || f.url.startsWith('node:'))).toBe(true);
  });

  it('refuses bad options with a TypeError naming them', () => {
    expect(() => createPromiseTracker({ getScope: () => undefined, onReport: () => {}, leakAfterMs: -1 })).toThrow(
      'loopsight: options.leakAfterMs must be a positive number up to 3600000 (got -1)',
    );
    // @ts-expect-error: a mode the tracker does not know
    expect(() => createPromiseTracker({ getScope: () => undefined, onReport: () => {}, mode: 'off' })).toThrow(TypeError);
  });
});

describe('stack capture', () => {
  it("puts the app's Error.stackTraceLimit back even when capturing throws", async () => {
    const { capture } = await import('../src/stack.js');
    const original = Error.captureStackTrace;
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 42;
    Error.captureStackTrace = () => {
      throw new RangeError('Maximum call stack size exceeded');
    };
    try {
      expect(() => capture(10, capture)).toThrow(RangeError);
      expect(Error.stackTraceLimit).toBe(42);
    } finally {
      Error.captureStackTrace = original;
      Error.stackTraceLimit = limit;
    }
  });
});
