import { AsyncLocalStorage } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import inspector from 'node:inspector';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createMonitor, type Monitor, type StallReport } from '@loopsight/core';
import { createStallWatchdog, type WatchdogStallReport } from '@loopsight/loop-lag';
import { afterEach, describe, expect, it } from 'vitest';
import { blockTheLoop } from '../../../test-support/blockers.js';
import { nativeNode } from '../../../test-support/capture.js';
import { until } from '../../../test-support/until.js';
import { MainThreadProfiler } from '../src/profile.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const monitors: Monitor[] = [];
afterEach(async () => {
  await Promise.all(monitors.splice(0).map((m) => m.stop()));
});

async function started(options: Parameters<typeof createMonitor>[0] = {}) {
  const reports: StallReport[] = [];
  const warnings: string[] = [];
  const monitor = createMonitor({ promises: false, onReport: () => {}, logger: { warn: (m) => warnings.push(m) }, ...options });
  monitors.push(monitor);
  monitor.on('stall', (r) => reports.push(r));
  monitor.start();
  await sleep(300);
  return { monitor, reports, warnings };
}

/** The reports of the jobs whose ids start with `prefix`, once `count` of them arrived (5 s at most), and no more. */
async function reportsOf(reports: StallReport[], prefix: string, count: number): Promise<StallReport[]> {
  const mine = () => reports.filter((r) => [r.request, ...(r.candidates ?? [])].some((s) => s?.correlationId.startsWith(prefix)));
  await until(() => mine().length >= count, 5_000, 25);
  await sleep(150);
  expect(mine(), JSON.stringify(reports)).toHaveLength(count);
  return mine();
}

/** Whether a stall report spans at least half of a block (the loop ran again one heartbeat after its end). */
function covers(r: StallReport, block: { start: number; end: number }): boolean {
  const overlap = Math.min(block.end, r.at + r.durationMs + 25) - Math.max(block.start, r.at);
  return overlap >= (block.end - block.start) / 2;
}

function threads(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
}

describe('attribution outside HTTP', () => {
  it('attributes a stall inside monitor.run() to that job', async () => {
    const { monitor, reports } = await started();
    monitor.run({ correlationId: 'cron-1', route: 'cron:nightly' }, () => blockTheLoop(250));
    await sleep(300);
    expect(reports).toHaveLength(1);
    expect(reports[0]?.request, JSON.stringify(reports[0])).toMatchObject({ correlationId: 'cron-1', route: 'cron:nightly' });
    expect(reports[0]?.stack.some((f) => f.functionName === 'blockTheLoop')).toBe(true);
  });

  it('reports a stall with no scope with its stack and no request', async () => {
    const { reports } = await started();
    // 600 ms: a watchdog thread starved on a loaded machine asked for the stack as a 250 ms block
    // ended, and the native sample read the timer code that ran next (Node 26).
    setTimeout(() => blockTheLoop(600), 10);
    await sleep(800);
    expect(reports).toHaveLength(1);
    expect(reports[0]?.request).toBeUndefined();
    // A loaded machine can pause late: still within the block, its stack is the block's.
    expect(['pause', 'late-pause']).toContain(reports[0]?.stackSource);
    // The first frame outside Node's own code: on Node 24 the pause often lands inside the
    // `performance` getter that blockTheLoop calls.
    expect(reports[0]?.stack.find((f) => !f.url.startsWith('node:'))?.functionName, JSON.stringify(reports[0])).toBe('blockTheLoop');
  });
});

describe('limits and degradation', () => {
  it('rate-limits stack captures: later stalls are counted and timed without a stack', async () => {
    const { monitor, reports } = await started({ loopLag: { maxStacksPerMinute: 2 } });
    const blocks: { start: number; end: number }[] = [];
    for (let i = 0; i < 4; i++) {
      await monitor.run({ correlationId: `rl-${i}` }, async () => {
        const start = Date.now();
        blockTheLoop(150);
        blocks.push({ start, end: Date.now() });
        await sleep(120);
      });
    }
    await until(() => blocks.every((b) => reports.some((r) => covers(r, b))), 5_000, 25);
    await sleep(150);
    // The report of each block: a loaded machine adds stalls of its own, before or after one, and
    // the requests then in flight are their candidates, so a report is matched by its time.
    const mine = blocks.map((b) => reports.find((r) => covers(r, b)));
    expect(mine.every(Boolean), JSON.stringify(reports)).toBe(true);
    // Two stacks in the minute, whichever stalls took them (a loaded machine's own can): a pause or a
    // late one. A stall that found the watchdog's thread not ready spent none ('unavailable').
    expect(
      reports.filter((r) => r.stack.length > 0).map((r) => r.stackSource),
      JSON.stringify(reports),
    ).toEqual([expect.stringMatching(/^(late-)?pause$/), expect.stringMatching(/^(late-)?pause$/)]);
    expect(mine.at(-1)?.stackSkipped, JSON.stringify(reports)).toBe('rate-limited');
    for (const r of mine) {
      if (r?.stack.length === 0) expect(['rate-limited', 'unavailable'], JSON.stringify(reports)).toContain(r.stackSkipped);
      expect(r?.durationMs).toBeGreaterThanOrEqual(100);
    }
  });

  it('times stalls without stacks when captureStacks is false', async () => {
    const { monitor, reports } = await started({ loopLag: { captureStacks: false } });
    void monitor.run({ correlationId: 'nostack-1' }, async () => {
      blockTheLoop(200);
      await sleep(1_000);
    });
    const mine = await reportsOf(reports, 'nostack-', 1);
    expect(mine[0]).toMatchObject({ stackSource: 'none', stack: [], stackSkipped: 'disabled' });
  });

  it('falls back to timing on the main thread when the worker dies, and says so once', async () => {
    const reports: WatchdogStallReport<object>[] = [];
    const errors: string[] = [];
    const watchdog = createStallWatchdog({
      thresholdMs: 100,
      captureStacks: true,
      getScope: () => undefined,
      inflight: () => 0,
      onStall: (r) => reports.push(r),
      onError: (what) => errors.push(what),
      // @ts-expect-error internal: a worker that dies at once
      workerSource: "throw new Error('worker crashed')",
    });
    watchdog.start();
    // The thread's failure reaches the main thread in its own time: up to seconds on a loaded machine.
    for (let i = 0; i < 200 && watchdog.status().mode !== 'main-thread'; i++) await sleep(50);
    expect(watchdog.status().mode).toBe('main-thread');
    blockTheLoop(200);
    await sleep(50);
    blockTheLoop(200);
    await sleep(50);
    await watchdog.stop();
    expect(reports).toHaveLength(2);
    expect(reports[0]).toMatchObject({ stackSource: 'none' });
    expect(reports[0]?.durationMs).toBeGreaterThanOrEqual(150);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/worker/);
  });

  it('reports a stall that came while a thread that never started was still starting', async () => {
    const reports: WatchdogStallReport<object>[] = [];
    const watchdog = createStallWatchdog({
      thresholdMs: 100,
      captureStacks: true,
      getScope: () => undefined,
      inflight: () => 0,
      onStall: (r) => reports.push(r),
      onError: () => {},
      // @ts-expect-error internal: a worker that fails 600 ms after it starts, having never said it runs
      workerSource: "setTimeout(() => { throw new Error('worker crashed late'); }, 600)",
    });
    watchdog.start();
    await sleep(50);
    expect(watchdog.status().mode).toBe('starting');
    blockTheLoop(300);
    for (let i = 0; i < 200 && watchdog.status().mode !== 'main-thread'; i++) await sleep(50);
    await watchdog.stop();
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ stackSource: 'none', stackSkipped: 'unavailable' });
    expect(reports[0]?.durationMs).toBeGreaterThanOrEqual(250);
  });

  it('works alone, without @loopsight/core: the scope comes from any AsyncLocalStorage', async () => {
    const als = new AsyncLocalStorage<{ job: string }>();
    const reports: WatchdogStallReport<{ job: string }>[] = [];
    const watchdog = createStallWatchdog({
      thresholdMs: 100,
      captureStacks: true,
      getScope: () => als.getStore(),
      inflight: () => 1,
      onStall: (r) => reports.push(r),
      onError: () => {},
    });
    watchdog.start();
    await sleep(300);
    als.run({ job: 'resize-images' }, () => blockTheLoop(200));
    await sleep(200);
    await watchdog.stop();
    const ours = reports.filter((r) => r.request?.job === 'resize-images');
    expect(ours).toHaveLength(1);
    expect(ours[0]?.inflight).toBe(1);
    // A loaded machine can hold the main thread past the pause's deadline: a late pause then names
    // the scope too, since blockTheLoop is still on its stack.
    expect(ours[0]?.requestSource).toBe(ours[0]?.stackSource);
    expect(['pause', 'late-pause']).toContain(ours[0]?.stackSource);
  });
});

describe('lifecycle', () => {
  it('stop() ends the worker; 40 start/stop cycles leave no worker, timer or handle behind', async () => {
    // libuv's thread pool first, as in nearly every app (any async fs, dns or crypto call starts
    // it): on Node 24+ the native capture addon's load starts it too, and its threads are the
    // pool's, not loopsight's.
    await readFile(fileURLToPath(import.meta.url));
    const before = threads();
    const resources = process.getActiveResourcesInfo().length;
    const monitor = createMonitor({ promises: false, onReport: () => {} });
    monitor.start();
    await sleep(200);
    expect(threads()).toBeGreaterThan(before);
    await monitor.stop();
    // Most cycles stop before the worker is up, one in four after it had 20 ms to start: a leak
    // shows after a single cycle of either kind.
    for (let i = 0; i < 40; i++) {
      monitor.start();
      if (i % 4 === 0) await sleep(20);
      await monitor.stop();
    }
    await sleep(200);
    expect(threads()).toBe(before);
    expect(process.getActiveResourcesInfo().length).toBeLessThanOrEqual(resources);
  });

  it('a watchdog being stopped stands down at once: a block during its stop is paused by the next watchdog only', async () => {
    // What the hub does when a monitor with other options joins: the old watchdog stops while the new
    // one runs. Still watching after its beats end, the old one paused the blocked thread and was
    // terminated before it resumed it: the process hung, paused, with no one to resume it.
    const script = fileURLToPath(new URL('./fixtures/stop-during-block.mjs', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 20_000 });
    const { reports, blocks } = JSON.parse(stdout) as {
      reports: WatchdogStallReport<unknown>[];
      blocks: { start: number; end: number }[];
    };
    // A pause the new watchdog did not ask for would have read as a debugger's: in no report,
    // including a stall of a loaded machine's own.
    for (const report of reports) expect(report.debuggerAttached, JSON.stringify(report)).toBeUndefined();
    // Each 500 ms block is paused by the new watchdog inside the block: its report names blockTheLoop.
    // (A loaded machine's own stalls, before or after a block, are other reports.)
    expect(blocks).toHaveLength(2);
    for (const block of blocks) {
      const during = reports.filter((r) => r.at < block.end && r.at + r.durationMs > block.start);
      expect(
        during.filter((r) => ['pause', 'late-pause'].includes(r.stackSource) && r.stack.some((f) => f.functionName === 'blockTheLoop')),
        stdout,
      ).toHaveLength(1);
    }
  });
});

// Three child processes that mostly wait: side by side.
describe.concurrent('lifecycle: the process exits', () => {
  it('a process with the watchdog running exits on its own', async () => {
    const script = fileURLToPath(new URL('./fixtures/exits.mjs', import.meta.url));
    const started = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 10_000 });
    expect(stdout).toContain('stall reported');
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it('exits through process.exit() with the profiler on, without "Waiting for the debugger to disconnect"', async () => {
    const script = fileURLToPath(new URL('./fixtures/exits.mjs', import.meta.url));
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script, 'profiler'], { timeout: 10_000 });
    expect(stdout).toContain('stall reported');
    expect(stderr).not.toMatch(/Waiting for the debugger/);
  });

  it('inspector backend: with an inspector open (a debugger may be attached), times stalls without pausing and says so once', async () => {
    const script = fileURLToPath(new URL('./fixtures/exits.mjs', import.meta.url));
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--inspect=127.0.0.1:0', script, 'capture=inspector'], {
      timeout: 10_000,
    });
    const report = JSON.parse(stdout.split('\n').find((l) => l.startsWith('{')) ?? '{}');
    expect(report).toMatchObject({ type: 'stall', stackSource: 'none', stackSkipped: 'unavailable' });
    expect(stderr.match(/another debugger may be attached/g)).toHaveLength(1);
  });

  it.runIf(nativeNode)(
    'native backend (Node 24+): with an inspector open, stalls still get their stack; nothing is said about the debugger',
    async () => {
      const script = fileURLToPath(new URL('./fixtures/exits.mjs', import.meta.url));
      const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--inspect=127.0.0.1:0', script, 'capture=native'], {
        timeout: 10_000,
      });
      // A block's report with the fixture's line as culprit (`block`, or its caller after a late
      // pause). On a loaded machine the first block can come before the watchdog thread runs, or be
      // sampled as it ended (the timer code after it: no culprit).
      const reports = stdout.split('\n').flatMap((l) => (l.startsWith('{') ? [JSON.parse(l)] : []));
      const report = reports.find((r) => r.capture === 'native' && String(r.culprit?.url).endsWith('/exits.mjs')) ?? {};
      expect(report, stdout).toMatchObject({ type: 'stall', capture: 'native', culprit: { line: expect.any(Number) } });
      expect(['pause', 'late-pause']).toContain(report.stackSource);
      // Nothing about the debugger; the one line forced native says (it names no request).
      expect(stderr).not.toMatch(/debugger may be attached/);
      expect(stderr.match(/\[LOOPSIGHT_\w+\]/g)).toEqual(['[LOOPSIGHT_CAPTURE_BACKEND]']);
    },
  );
});

describe('production safety: smaller items', () => {
  const options = { captureStacks: true, getScope: () => undefined, inflight: () => 0, onStall: () => {}, onError: () => {} };

  it.each([0.001, 0, 9.99, -5, Number.NaN, 3_600_001, '100'])(
    'refuses thresholdMs %s with a TypeError naming the option and its range',
    (thresholdMs) => {
      expect(() => createStallWatchdog({ ...options, thresholdMs: thresholdMs as number })).toThrow(
        expect.objectContaining({
          name: 'TypeError',
          code: 'ERR_LOOPSIGHT_INVALID_OPTION',
          message: `loopsight: options.thresholdMs must be a number from 10 to 3600000 ms (got ${typeof thresholdMs === 'string' ? JSON.stringify(thresholdMs) : String(thresholdMs)})`,
        }),
      );
    },
  );

  it('accepts thresholdMs from 10 to 3600000', () => {
    expect(() => createStallWatchdog({ ...options, thresholdMs: 10 })).not.toThrow();
    expect(() => createStallWatchdog({ ...options, thresholdMs: 3_600_000 })).not.toThrow();
  });

  it('the ESM and CJS builds loaded in one process register their scope readers under different keys', async () => {
    const dist = fileURLToPath(new URL('../dist/', import.meta.url));
    const esm = (await import(`${dist}index.js`)) as typeof import('@loopsight/loop-lag');
    const cjs = createRequire(import.meta.url)(`${dist}index.cjs`) as typeof import('@loopsight/loop-lag');
    const readers = () => Object.keys((globalThis as Record<symbol, object>)[Symbol.for('loopsight.loop-lag.scopes.v1')] ?? {});
    const before = readers();
    const a = esm.createStallWatchdog({ ...options, thresholdMs: 100, captureStacks: false });
    const b = cjs.createStallWatchdog({ ...options, thresholdMs: 100, captureStacks: false });
    a.start();
    b.start();
    const added = readers().filter((k) => !before.includes(k));
    await b.stop();
    const left = readers().filter((k) => !before.includes(k));
    await a.stop();
    expect(added).toHaveLength(2);
    // Stopping one build's watchdog leaves the other's reader in place.
    expect(left).toHaveLength(1);
  });

  it('a failure of the profiler restart timer is reported through onError, not thrown into the app', async () => {
    const errors: string[] = [];
    const post = inspector.Session.prototype.post;
    const profiler = new MainThreadProfiler(10, 30, (error) => errors.push(String(error)));
    // The restart's Profiler.stop fails from now on.
    inspector.Session.prototype.post = function (this: inspector.Session, method: string, ...rest: unknown[]) {
      if (method === 'Profiler.stop') throw new Error('Profiler.stop failed');
      return (post as (...args: unknown[]) => void).call(this, method, ...rest);
    } as typeof post;
    try {
      await sleep(150);
    } finally {
      inspector.Session.prototype.post = post;
      profiler.close();
    }
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/Profiler.stop failed/);
  });
});
