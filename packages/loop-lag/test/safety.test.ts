// The safety guarantees of docs/loop-lag.md ("Safety guarantees"), each held by a child process
// that blocks, misbehaves or exits: fixtures/capture.mjs, run against the built package.
import { fileURLToPath } from 'node:url';
import type { WatchdogStallReport, WatchdogStatus } from '@loopsight/loop-lag';
import { describe, expect, it } from 'vitest';
import { nativeNode } from '../../../test-support/capture.js';
import { runNode } from '../../../test-support/child.js';
import { ahead } from '../../../test-support/lanes.js';

const fixture = fileURLToPath(new URL('./fixtures/capture.mjs', import.meta.url));

type Report = WatchdogStallReport<{ id: string }>;
interface Event {
  event: string;
  report?: Report;
  at?: number;
  lagMs?: number;
  status?: WatchdogStatus;
  what?: string;
  pausedAt?: number;
  resumeSentAt?: number;
  resumedAt?: number;
}
interface Run {
  code: number | null;
  stderr: string;
  events: Event[];
  /** Epoch ms at which the process was seen to exit. */
  exitedAt: number;
  reports: Report[];
  of: (name: string) => Event | undefined;
  /** The reports printed after the block ended: its own (a loaded machine may add stalls before it, starting up). */
  ofBlock: Report[];
}

/** Runs the fixture; a process that does not exit on its own is killed at `timeoutMs` and fails the test. */
async function run(args: object, timeoutMs = 20_000): Promise<Run> {
  const r = await runNode([fixture, JSON.stringify(args)], { timeoutMs });
  const events = r.events as unknown as Event[];
  const reports = events.flatMap((e) => (e.report ? [e.report] : []));
  const ended = events.findIndex((e) => e.event === 'block-ended');
  const ofBlock = ended < 0 ? [] : events.slice(ended).flatMap((e) => (e.report ? [e.report] : []));
  return {
    code: r.code,
    stderr: r.stderr,
    events,
    exitedAt: r.exitedAt,
    reports,
    of: (name) => events.find((e) => e.event === name),
    ofBlock,
  };
}

const frames = (r: Report | undefined) => r?.stack.map((f) => f.functionName) ?? [];

// Each case pins the backend whose steps it breaks: the inspector (also `auto`'s), or the native
// backend (Node 24 and later here; it says once that it names no request).
const inspector = { capture: 'inspector' };
const native = { capture: 'native' };
const steps = ['probe', 'enable', 'pause', 'evaluate', 'resume', 'disconnect'] as const;
const nativeSteps = nativeNode ? (['native-capture'] as const) : [];
const faultCases = [...steps, ...nativeSteps].flatMap((step) => (['fail', 'hang'] as const).map((kind) => [step, kind] as const));
const optionsOf = (step: string) => (step.startsWith('native') ? native : inspector);
const EXIT_RUNS = 2;
const exitRuns = (name: string, loopsight: boolean) =>
  Array.from({ length: EXIT_RUNS }, (_, i) => [`${name} ${loopsight} ${i}`, () => run({ scenario: name, loopsight })] as const);

// Every scenario is a child process that mostly waits (starting, sleeps, blocks of 200-300 ms):
// two run side by side, ahead of the tests, and each test asserts on its own child's output.
// The bounds below are each child's own (lag, exit delay after its own block), which a neighbour
// does not move: measured with two side by side and another timing file beside them.
const scenario = ahead(2, {
  ...Object.fromEntries(
    faultCases.map(([step, kind]) => [
      `${step} ${kind}`,
      () => run({ scenario: 'fault', faults: [{ step, kind }], options: optionsOf(step) }),
    ]),
  ),
  kill: () => run({ scenario: 'fault', faults: [{ step: 'evaluate', kind: 'kill' }], options: inspector }),
  ...(nativeNode
    ? { 'native kill': () => run({ scenario: 'fault', faults: [{ step: 'native-capture', kind: 'kill' }], options: native }) }
    : {}),
  'open-later': () => run({ scenario: 'open-later', options: inspector }),
  restarts: () =>
    run({ scenario: 'restarts', faults: [{ step: 'pause', kind: 'kill', everyWorker: true }], options: { count: 6, ...inspector } }),
  ...Object.fromEntries(['sleep-end', 'sleep-exit'].flatMap((s) => [...exitRuns(s, false), ...exitRuns(s, true)])),
  'block-exit hang': () => run({ scenario: 'block-exit', faults: [{ step: 'pause', kind: 'hang' }], options: inspector }),
  'block-exit': () => run({ scenario: 'block-exit' }),
  'block-throw': () => run({ scenario: 'block-throw' }),
});

describe('a fault at any step of a capture', () => {
  it.each(faultCases)(
    '%s: %s: the main thread runs within 1 s, the next stall is reported with its stack, the process exits',
    async (step, kind) => {
      const r = await scenario(`${step} ${kind}`);
      const result = r.of('result');
      expect(r.code, r.stderr).toBe(0);
      expect(result?.lagMs, JSON.stringify(r.events)).toBeLessThan(1000);
      const secondAt = r.of('second')?.at ?? Number.NaN;
      const next = r.reports.find((x) => x.at >= secondAt - 100);
      // 'late-pause' when a loaded machine delays the worker by more than 25 ms: still the stack of the block.
      expect(['pause', 'late-pause'], JSON.stringify(r.events)).toContain(next?.stackSource);
      expect(frames(next)).toContain('secondBlock');
      expect(next?.durationMs).toBeGreaterThanOrEqual(200);
      // Exits on its own, promptly: nothing of the watchdog holds it.
      expect(r.exitedAt - (result?.at ?? 0)).toBeLessThan(1500);
    },
  );

  it.each(nativeNode ? ['kill', 'native kill'] : ['kill'])(
    '%s: the worker killed while the main thread is paused (or sampled): the thread runs on, that stall is reported without a stack, the worker is restarted and the next stall has its stack',
    async (name) => {
      const r = await scenario(name);
      expect(r.code, r.stderr).toBe(0);
      expect(r.of('result')?.lagMs, JSON.stringify(r.events)).toBeLessThan(1000);
      expect(r.of('result')?.status, JSON.stringify(r.events)).toMatchObject({ mode: 'worker', stacks: true, restarts: 1 });
      // The second block's report by its time: a loaded machine can add a stall of its own between.
      const [killed] = r.reports;
      const secondAt = r.of('second')?.at ?? Number.NaN;
      const next = r.reports.find((x) => x.at >= secondAt - 100);
      expect(killed, JSON.stringify(r.events)).toMatchObject({ stackSource: 'none', stackSkipped: 'unavailable' });
      expect(killed?.durationMs).toBeGreaterThanOrEqual(200);
      expect(['pause', 'late-pause']).toContain(next?.stackSource);
      expect(frames(next)).toContain('secondBlock');
      expect(next?.durationMs).toBeGreaterThanOrEqual(200);
      // The worker's death; forced native also says once that it names no request.
      expect(r.events.filter((e) => e.event === 'error' && e.what !== 'the stall capture backend')).toHaveLength(1);
    },
  );

  it('a worker that dies at every stall: restarted 3 times, then stalls are timed on the main thread, with one more warning', async () => {
    const r = await scenario('restarts');
    expect(r.code, r.stderr).toBe(0);
    expect(r.of('result')?.status, JSON.stringify(r.events)).toMatchObject({ mode: 'main-thread', restarts: 3 });
    // Every stall is reported, none with a stack (a loaded machine may add short stalls of its own).
    expect(r.reports.filter((x) => x.durationMs >= 150).length, JSON.stringify(r.events)).toBeGreaterThanOrEqual(6);
    for (const report of r.reports) expect(report.stackSource).toBe('none');
    const warnings = r.events.filter((e) => e.event === 'error').map((e) => e.what);
    expect(warnings, JSON.stringify(r.events)).toHaveLength(2);
    expect(warnings[0]).toMatch(/restarted \(at most 3 times an hour\)/);
    expect(warnings[1]).toMatch(/after 3 restarts within an hour; stalls are now timed on the main thread/);
  });
});

/** Exit delay: ms from the end of the block to the exit of the process. The least of the runs. */
async function exitDelay(name: string, loopsight: boolean): Promise<{ delayMs: number; runs: Run[] }> {
  const runs = await Promise.all(exitRuns(name, loopsight).map(([key]) => scenario(key)));
  const delays = runs.map((r) => r.exitedAt - (r.of('block-ended')?.at ?? Number.NaN));
  return { delayMs: Math.min(...delays), runs };
}

describe('a stall that ends the process', () => {
  it.each(['sleep-end', 'sleep-exit'])(
    '%s (1.5 s in execFileSync): the stall is reported, no "Waiting for the debugger", exit within 200 ms of a run without loopsight',
    async (name) => {
      const plain = await exitDelay(name, false);
      const watched = await exitDelay(name, true);
      for (const r of watched.runs) {
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).not.toMatch(/Waiting for the debugger/);
        expect(r.ofBlock.length, JSON.stringify(r.events)).toBeLessThanOrEqual(1);
      }
      // The report of a stall that ends the process is delivered on the way out within a bounded
      // wait: beside other test runs a starved watchdog thread can miss it (CI: 1 run of 4 at load
      // 5–7), so it is asked of the best run, and never at the cost of the exit delay below.
      const reported = watched.runs.find((r) => r.ofBlock.length === 1);
      expect(reported, JSON.stringify(watched.runs.map((r) => r.events))).toBeDefined();
      expect(reported?.ofBlock[0]?.durationMs).toBeGreaterThanOrEqual(1400);
      expect(frames(reported?.ofBlock[0])).toContain('execFileSync');
      console.log(`${name}: exit ${watched.delayMs} ms after the block with loopsight, ${plain.delayMs} ms without`);
      expect(watched.delayMs - plain.delayMs).toBeLessThanOrEqual(200);
    },
  );

  it('process.exit() during a capture (the pause never answered): exits at once, reported, no "Waiting for the debugger"', async () => {
    const r = await scenario('block-exit hang');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Waiting for the debugger/);
    expect(r.exitedAt - (r.of('block-ended')?.at ?? 0)).toBeLessThan(500);
    expect(r.ofBlock, JSON.stringify(r.events)).toHaveLength(1);
    expect(r.ofBlock[0]?.durationMs).toBeGreaterThanOrEqual(200);
  });

  it('process.exit() right after a stall: the stall is reported with its stack, no "Waiting for the debugger"', async () => {
    const r = await scenario('block-exit');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Waiting for the debugger/);
    expect(r.exitedAt - (r.of('block-ended')?.at ?? 0)).toBeLessThan(500);
    expect(r.ofBlock, JSON.stringify(r.events)).toHaveLength(1);
    expect(frames(r.ofBlock[0]), JSON.stringify(r.events)).toContain('firstBlock');
  });

  it('an uncaught exception thrown right after a stall: the process fails with it, at once, and the stall is reported', async () => {
    const r = await scenario('block-throw');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/thrown right after a stall/);
    expect(r.stderr).not.toMatch(/Waiting for the debugger/);
    expect(r.exitedAt - (r.of('block-ended')?.at ?? 0)).toBeLessThan(500);
    expect(r.ofBlock, JSON.stringify(r.events)).toHaveLength(1);
    expect(frames(r.ofBlock[0]), JSON.stringify(r.events)).toContain('firstBlock');
  });
});

describe("someone else's debugger", () => {
  it.each(['on-stall', 'always'])(
    'debuggerMode %s: a second inspector session that pauses the main thread for 1 s is not resumed early; the stall is timed without a stack',
    // A plain Debugger.pause asked within the few ms the watchdog's own pause of a stall is landing
    // cannot be told from it and is resumed with it (docs/loop-lag.md, the one exception): on a
    // loaded machine a stall of its own can be captured just then (resumed 10 ms after the pause,
    // once in CI). Tried again then; a watchdog that resumed foreign pauses fails every try.
    { retry: 2 },
    async (debuggerMode) => {
      // Alone, after the others: a pause asked at the moment of a capture (of a stall a neighbour's
      // load adds) is the watchdog's to resume, and the debugger's 1 s would end early.
      const r = await run({ scenario: 'debugger', options: { debuggerQuietMs: 500, debuggerMode, ...inspector } });
      expect(r.code, r.stderr).toBe(0);
      const times = r.of('debugger');
      const pausedAt = times?.pausedAt ?? Number.NaN;
      const resumeSentAt = times?.resumeSentAt ?? Number.NaN;
      // The thread resumed when the debugger asked, not before.
      // (a 1000 ms timer, which may fire a millisecond early by Date.now())
      expect(resumeSentAt - pausedAt, JSON.stringify(r.events)).toBeGreaterThanOrEqual(990);
      expect(times?.resumedAt).toBeGreaterThanOrEqual(resumeSentAt);
      // From the debugger's pause on: a loaded machine can add a stall of its own before it (the
      // debugger thread starting).
      const from = r.reports.findIndex((report) => report.debuggerAttached === true && report.durationMs >= 900);
      const [held, quiet, after] = r.reports.slice(Math.max(0, from));
      expect(held, JSON.stringify(r.events)).toMatchObject({
        stack: [],
        stackSource: 'none',
        stackSkipped: 'unavailable',
        debuggerAttached: true,
      });
      expect(held?.durationMs).toBeGreaterThanOrEqual(900);
      // Right after, the debugger is likely still there: no pause.
      expect(quiet, JSON.stringify(r.events)).toMatchObject({ stackSkipped: 'unavailable', debuggerAttached: true });
      // Once it has been quiet for debuggerQuietMs, stacks again.
      // (a loaded machine can land that pause late: then it names no request, but it is taken)
      expect(after?.debuggerAttached, JSON.stringify(r.events)).toBeUndefined();
      expect(after?.stack.length).toBeGreaterThan(0);
      if (after?.stackSource === 'pause') expect(after).toMatchObject({ request: { id: 'after-quiet' } });
      else expect(after?.stackSource).toBe('late-pause');
      expect(r.of('result')?.status?.debuggerStalls).toBe(2);
      expect(r.events.filter((e) => e.what === 'stall stacks are off while a debugger may be attached')).toHaveLength(1);
    },
  );

  it('an inspector opened after start (inspector.open(), as SIGUSR1 does): no pause while it is open, stacks again once closed', async () => {
    const r = await scenario('open-later');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Waiting for the debugger/);
    const [open, closed] = r.reports;
    expect(open, JSON.stringify(r.events)).toMatchObject({ stack: [], stackSkipped: 'unavailable', debuggerAttached: true });
    // A loaded machine can take the pause past the late-pause mark; it still names the request and the block.
    expect(closed, JSON.stringify(r.events)).toMatchObject({ request: { id: 'closed' } });
    expect(['pause', 'late-pause']).toContain(closed?.stackSource);
    expect(closed?.stack.some((f) => f.functionName === 'secondBlock')).toBe(true);
  });
});
