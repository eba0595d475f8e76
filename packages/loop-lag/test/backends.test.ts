// The two capture backends: how `capture` chooses, what status() says, the native addon's absence,
// sampling a long stall. Another debugger pausing the thread: native-debugger.test.ts.
import { AsyncLocalStorage } from 'node:async_hooks';
import { createMonitor } from '@loopsight/core';
import { createStallWatchdog, expectBlocking, type StallWatchdog, type WatchdogStallReport } from '@loopsight/loop-lag';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeNode } from '../../../test-support/capture.js';
import { until } from '../../../test-support/until.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type Scope = { id: string };

const running: StallWatchdog[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.stop()));
});

// One store for the file: the scopes the inspector reads (the native backend reads none).
const als = new AsyncLocalStorage<Scope>();

function started(options: Record<string, unknown> = {}) {
  const reports: WatchdogStallReport<Scope>[] = [];
  const errors: { what: string; code?: string }[] = [];
  const watchdog = createStallWatchdog<Scope>({
    thresholdMs: 100,
    getScope: () => als.getStore(),
    inflight: () => 0,
    onStall: (r) => reports.push(r),
    onError: (what, error) => errors.push({ what, code: (error as { code?: string }).code }),
    ...options,
  } as Parameters<typeof createStallWatchdog<Scope>>[0]);
  running.push(watchdog);
  watchdog.start();
  return { als, watchdog, reports, errors };
}

async function ready(watchdog: StallWatchdog) {
  await until(() => watchdog.status().mode === 'worker', 5_000, 20);
  await sleep(150);
}

function busy(ms: number) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('choosing the backend', () => {
  it('refuses an unknown capture, in loop-lag and in core, naming the option and the values', () => {
    expect(() => started({ capture: 'fast' })).toThrow(
      expect.objectContaining({
        code: 'ERR_LOOPSIGHT_INVALID_OPTION',
        message: expect.stringMatching(/capture.*'auto', 'native', 'inspector'/),
      }),
    );
    expect(() => createMonitor({ loopLag: { capture: 'debugger' as 'auto' } })).toThrow(
      expect.objectContaining({ code: 'ERR_LOOPSIGHT_INVALID_OPTION', message: expect.stringMatching(/loopLag\.capture/) }),
    );
  });

  it('auto: the inspector on every Node, and status() says why; nothing is said', () => {
    const { watchdog, errors } = started();
    expect(watchdog.status().capture).toMatchObject({
      backend: 'inspector',
      reason: expect.stringMatching(/^auto: the inspector names the request; the native backend cannot \(.*V8 termination\)$/),
    });
    expect(errors).toEqual([]);
  });

  it('inspector: the inspector, whatever the Node', () => {
    const { watchdog } = started({ capture: 'inspector' });
    expect(watchdog.status().capture).toEqual({ backend: 'inspector', reason: 'capture: inspector' });
  });

  it('native asked for and the addon absent: the inspector takes the stacks (with the request), and it is said once', async () => {
    const { als, watchdog, reports, errors } = started({ capture: 'native', faults: [{ step: 'native-load', kind: 'fail' }] });
    expect(watchdog.status().capture).toMatchObject({ backend: 'inspector', reason: expect.stringMatching(/did not load/) });
    await ready(watchdog);
    for (const id of ['a', 'b']) {
      als.run({ id }, () => busy(300));
      await sleep(300);
    }
    await until(() => reports.length >= 2, 5_000, 25);
    for (const r of reports) expect(r, JSON.stringify(reports)).toMatchObject({ capture: 'inspector' });
    expect(reports.map((r) => r.request?.id)).toEqual(['a', 'b']);
    expect(errors).toEqual([{ what: 'the stall capture backend', code: 'LOOPSIGHT_CAPTURE_BACKEND' }]);
  });

  it('native asked for: stacks without the request (the jobs in flight are candidates), said once', async () => {
    const { als, watchdog, reports, errors } = started({ capture: 'native', candidates: () => [{ id: 'in-flight' }] });
    expect(watchdog.status().capture).toMatchObject({
      backend: 'native',
      reason: expect.stringMatching(/^native: stacks without the request/),
    });
    await ready(watchdog);
    for (const id of ['a', 'b']) {
      als.run({ id }, () => busy(300));
      await sleep(300);
    }
    await until(() => reports.length >= 2, 5_000, 25);
    for (const r of reports) {
      expect(r, JSON.stringify(reports)).toMatchObject({ capture: 'native', candidates: [{ id: 'in-flight' }] });
      expect(r.stack.some((f) => f.functionName === 'busy')).toBe(true);
      expect(r.request).toBeUndefined();
    }
    expect(errors).toEqual([{ what: 'the stall capture backend', code: 'LOOPSIGHT_CAPTURE_BACKEND' }]);
  });
});

function heavyStep(ms: number) {
  busy(ms);
}
function lightStep(ms: number) {
  busy(ms);
}

describe.runIf(nativeNode)('native backend: samples while the thread stays blocked', () => {
  it('a 1 s stall of 50 calls to two functions (80% / 20% of the time) names the 80% one, with samples >= 10', async () => {
    const { als, watchdog, reports } = started({ capture: 'native' });
    await ready(watchdog);
    als.run({ id: 'mixed' }, () => {
      for (let i = 0; i < 50; i++) {
        if (i % 5 === 4) lightStep(20);
        else heavyStep(20);
      }
    });
    await until(() => reports.length > 0, 5_000, 25);
    await sleep(200);
    const report = reports.find((r) => r.durationMs >= 800);
    expect(report, JSON.stringify(reports)).toMatchObject({ capture: 'native' });
    expect(report?.request).toBeUndefined();
    expect(report?.stack.find((f) => f.url.endsWith('backends.test.ts') && f.functionName !== 'busy')?.functionName).toBe('heavyStep');
    expect(report?.samples).toBeGreaterThanOrEqual(10);
  });
});

describe.runIf(nativeNode)('a stack read inside expectBlocking() for a stall that began before it', () => {
  it('the stall is reported as expected, without the stack, with the declaring request', async () => {
    // The watchdog thread is held 1 s before its sample (a starved thread, as on a loaded
    // machine): the stall began in undeclared work, the stack is read in the declared work.
    const { als, watchdog, reports } = started({ capture: 'native', faults: [{ step: 'native-capture', kind: 'hang' }] });
    await ready(watchdog);
    als.run({ id: 'declared' }, () => {
      busy(300);
      expectBlocking(() => busy(1_500));
    });
    await until(() => reports.length > 0, 5_000, 25);
    await sleep(200);
    expect(reports, JSON.stringify(reports)).toHaveLength(1);
    expect(reports[0]).toMatchObject({
      expected: true,
      stack: [],
      stackSource: 'none',
      stackSkipped: 'expected',
      request: { id: 'declared' },
      requestSource: 'expectBlocking',
    });
    expect(reports[0]?.durationMs).toBeGreaterThanOrEqual(1_500);
  });
});
