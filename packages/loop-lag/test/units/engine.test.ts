// Unit tests of the watchdog thread's pieces: each runs here as the module it is, with a Target
// standing in for a thread's debugger where the test needs a debugger to misbehave on cue. The
// real inspector paths are the integration tests' (stall, safety, termination, threads).
import { describe, expect, it } from 'vitest';
import { expectBlocking } from '../../src/expected.js';
import { createHeartbeat, heartbeatMsFor, int32Ms, latePauseMsFor, SLOT, since } from '../../src/heartbeat.js';
import type { CaptureStep, StallCapture } from '../../src/protocol.js';
import { DeclaredBlocking, reportOf, timedReport } from '../../src/report.js';
import { TokenBucket } from '../../src/thread/bucket.js';
import { type CaptureContext, capture } from '../../src/thread/capture.js';
import { Naps, within } from '../../src/thread/clock.js';
import { Faults } from '../../src/thread/faults.js';
import type { Landed, Target } from '../../src/thread/target.js';
import type { StallWatchdogOptions } from '../../src/types.js';

describe('heartbeat layout', () => {
  it('gives every slot its own index inside the shared buffer', () => {
    const beat = createHeartbeat();
    const slots = Object.values(SLOT);
    expect(new Set(slots).size).toBe(slots.length);
    for (const slot of slots) expect(slot).toBeLessThan(beat.length);
    expect(beat.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('beats within a quarter of the threshold (1 to 25 ms); a pause is late past a quarter of it (at least 20 ms)', () => {
    expect([10, 40, 100, 1000].map(heartbeatMsFor)).toEqual([2, 10, 25, 25]);
    expect(heartbeatMsFor(3)).toBe(1);
    expect([10, 100, 400].map(latePauseMsFor)).toEqual([20, 25, 100]);
  });

  it('reads ages across the wrap of the int32 ms counter', () => {
    const before = int32Ms(2 ** 31 - 5);
    const after = int32Ms(2 ** 31 + 10);
    expect(after).toBeLessThan(0);
    expect(since(after, before)).toBe(15);
  });
});

describe('token bucket', () => {
  it('allows its size at once, then one per 60/size seconds', () => {
    let now = 0;
    const bucket = new TokenBucket(3, () => now);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
    now += 19_999;
    expect(bucket.take()).toBe(false);
    now += 1;
    expect(bucket.take()).toBe(true);
    now += 10 * 60_000;
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
  });
});

describe('faults', () => {
  it('are used up step by step, `times` each', () => {
    const faults = new Faults([
      { step: 'pause', kind: 'hang', times: 2 },
      { step: 'resume', kind: 'fail' },
    ]);
    expect([faults.at('probe'), faults.at('pause'), faults.at('pause'), faults.at('pause')]).toEqual([
      undefined,
      'hang',
      'hang',
      undefined,
    ]);
    expect([faults.at('resume'), faults.at('resume')]).toEqual(['fail', undefined]);
  });
});

describe('clock', () => {
  it('within() rejects an answer that does not come, naming the command', async () => {
    await expect(within(new Promise(() => {}), 20, 'Debugger.resume')).rejects.toThrow('Debugger.resume: no answer within 20 ms');
    await expect(within(Promise.resolve(7), 20, 'x')).resolves.toBe(7);
  });

  it('wakeAll() ends every nap at once', async () => {
    const naps = new Naps();
    const started = performance.now();
    const napping = Promise.all([naps.nap(10_000), naps.nap(10_000)]);
    naps.wakeAll();
    await napping;
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

/** A thread's debugger that answers as told; `blocked` is the thread still stalled (its heartbeat does not move). */
class ScriptedTarget implements Target {
  readonly calls: string[] = [];
  released: boolean | undefined;
  landing: Landed | 'foreign' = { frames: [frame('blocker', 'file:///app/blocker.js', 1, 9)], at: 0 };
  hang = new Set<string>();
  fail = new Set<string>();
  scope: unknown = JSON.stringify({ request: { id: 'r1' }, inflight: 1, candidates: [] });
  delayMs = 1;
  isGone = false;
  opens = true;
  #resolve: ((landed: Landed | 'foreign') => void) | undefined;

  async open(): Promise<boolean> {
    return this.opens;
  }

  command(method: string, _params?: object, _step?: CaptureStep): Promise<Record<string, unknown>> {
    this.calls.push(method);
    if (this.hang.has(method)) return new Promise(() => {});
    if (this.fail.has(method)) return Promise.reject(new Error(`${method} refused`));
    if (method === 'Runtime.evaluate') return Promise.resolve({ result: { value: this.scope } });
    if (method === 'Debugger.getPossibleBreakpoints') return Promise.resolve({ locations: [{ type: 'call' }] });
    return Promise.resolve({});
  }

  probe(): (landedAt: number) => number {
    return () => this.delayMs;
  }

  askPause(): Promise<void> {
    return Promise.all(['Debugger.enable', 'Debugger.pause'].map((m) => this.command(m))).then(() => {
      if (!this.hang.has('land')) setTimeout(() => this.#resolve?.(this.landing), 1);
    });
  }

  nextPause(): Promise<Landed | 'foreign'> {
    return new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  endWait(): void {
    this.#resolve = undefined;
  }

  script(): { url: string | undefined; map: string | undefined } {
    return { url: undefined, map: 'blocker.js.map' };
  }

  gone(): boolean {
    return this.isGone;
  }

  async release(paused: boolean): Promise<void> {
    this.released = paused;
  }
}

function frame(functionName: string, url: string, line: number, column: number) {
  return {
    functionName,
    url,
    location: { scriptId: '1', lineNumber: line - 1, columnNumber: column - 1 },
    functionLocation: { scriptId: '1', lineNumber: 0, columnNumber: 0 },
  };
}

function context(overrides: Partial<CaptureContext> = {}): CaptureContext & { errors: string[] } {
  const errors: string[] = [];
  return {
    beat: createHeartbeat(),
    seq: 0,
    noun: 'worker',
    maxFrames: 32,
    latePauseMs: 25,
    scopeExpression: 'x',
    commandTimeoutMs: 50,
    reachTimeoutMs: 2_000,
    pollMs: 2,
    naps: new Naps(),
    now: () => performance.now(),
    exiting: () => false,
    onError: (what) => errors.push(what),
    errors,
    ...overrides,
  };
}

describe('capture sequence', () => {
  it('pauses, reads the stack and the scope, and resumes', async () => {
    const target = new ScriptedTarget();
    const result = await capture(target, context());
    expect(result).toMatchObject({
      stack: [{ functionName: 'blocker', url: 'file:///app/blocker.js', line: 1, column: 9 }],
      maps: ['blocker.js.map'],
      delayMs: 1,
    });
    expect(result).not.toHaveProperty('enteredAfter');
    expect(target.released).toBe(true);
  });

  it('a late pause asks whether its top frame had made a call (then it was already running)', async () => {
    const target = new ScriptedTarget();
    target.delayMs = 80;
    expect(await capture(target, context())).toMatchObject({ delayMs: 80, enteredAfter: 0 });
    expect(target.calls).toContain('Debugger.getPossibleBreakpoints');
  });

  it("a pause that is not ours is left alone: 'foreign', not resumed", async () => {
    const target = new ScriptedTarget();
    target.landing = 'foreign';
    expect(await capture(target, context())).toBe('foreign');
    expect(target.released).toBe(false);
  });

  it("a thread that went away while the pause was awaited: 'gone', released", async () => {
    const target = new ScriptedTarget();
    target.hang.add('land');
    const result = capture(target, context());
    setTimeout(() => {
      target.isGone = true;
    }, 20);
    expect(await result).toBe('gone');
    expect(target.released).toBe(false);
    const closed = new ScriptedTarget();
    closed.opens = false;
    expect(await capture(closed, context())).toBe('gone');
  });

  it('a pause that never lands once the thread runs again gives up within the command timeout, and lets it go', async () => {
    const target = new ScriptedTarget();
    target.hang.add('land');
    const c = context();
    const started = performance.now();
    const result = capture(target, c);
    // The thread beats again: it is no longer blocked, so the pause is due at once.
    setTimeout(() => Atomics.add(c.beat, SLOT.seq, 1), 20);
    await expect(result).rejects.toThrow('the worker did not pause: no answer');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(target.released).toBe(false);
  });

  it('a refused pause is an error, and the thread is let go', async () => {
    const target = new ScriptedTarget();
    target.fail.add('Debugger.pause');
    await expect(capture(target, context())).rejects.toThrow('Debugger.pause refused');
    expect(target.released).toBe(false);
  });

  it('a scope read that hangs costs the command timeout, is said, and the stack is still reported', async () => {
    const target = new ScriptedTarget();
    target.hang.add('Runtime.evaluate');
    const c = context();
    const result = await capture(target, c);
    expect(result).toMatchObject({ stack: [{ functionName: 'blocker' }] });
    expect(result).not.toHaveProperty('scope');
    expect(c.errors).toEqual(['scope']);
    expect(target.released).toBe(true);
  });

  it('the process exiting ends the wait for a pause at once', async () => {
    const target = new ScriptedTarget();
    target.hang.add('land');
    let exiting = false;
    const result = capture(target, context({ exiting: () => exiting }));
    setTimeout(() => {
      exiting = true;
    }, 10);
    await expect(result).rejects.toThrow('the process exits');
  });
});

type Scope = { id: string };

function options(overrides: Partial<StallWatchdogOptions<Scope>> = {}): StallWatchdogOptions<Scope> {
  return {
    thresholdMs: 100,
    getScope: () => ({ id: 'declared' }),
    inflight: () => 3,
    onStall: () => {},
    onError: () => {},
    ...overrides,
  };
}

const app = { functionName: 'handler', url: 'file:///app/routes.js', line: 4, column: 2 };
const lib = { functionName: 'parse', url: 'file:///app/node_modules/lib/index.js', line: 1, column: 1 };
const scope = (id: string) => JSON.stringify({ request: { id }, inflight: 2, candidates: [{ id: 'a' }, { id: 'b' }] });

function stall(fields: Partial<StallCapture>): StallCapture {
  return { durationMs: 300, at: 1, stack: [], stackSource: 'none', ...fields };
}

describe('report builder', () => {
  const here = (o = options()) => ({ options: o, candidates: () => [{ id: 'c' }], declaredScope: () => undefined });

  it('a prompt pause names the request it read', () => {
    const report = reportOf(stall({ stack: [lib, app], stackSource: 'pause', scope: scope('r1') }), here());
    expect(report).toMatchObject({ request: { id: 'r1' }, requestSource: 'pause', inflight: 2 });
    expect(report).not.toHaveProperty('candidates');
  });

  it('a late pause names it only with an application frame below the frames entered after the pause', () => {
    const below = reportOf(stall({ stack: [lib, app], stackSource: 'late-pause', enteredAfter: 1, scope: scope('r1') }), here());
    expect(below).toMatchObject({ request: { id: 'r1' }, requestSource: 'late-pause', enteredAfter: 1 });
    const onTop = reportOf(stall({ stack: [app, lib], stackSource: 'late-pause', scope: scope('r1') }), here());
    expect(onTop).not.toHaveProperty('request');
    expect(onTop.candidates).toEqual([{ id: 'a' }, { id: 'b' }]);
    // Entered before the pause (0): the top frame counts.
    const running = reportOf(stall({ stack: [app, lib], stackSource: 'late-pause', enteredAfter: 0, scope: scope('r1') }), here());
    expect(running.requestSource).toBe('late-pause');
  });

  it('frameFilter decides what is application code; one that throws counts as not', () => {
    const mine = options({ frameFilter: (url) => url.includes('/lib/') });
    expect(reportOf(stall({ stack: [app, lib], stackSource: 'late-pause', scope: scope('r1') }), here(mine)).request).toEqual({ id: 'r1' });
    const broken = options({
      frameFilter: () => {
        throw new Error('no');
      },
    });
    expect(reportOf(stall({ stack: [lib, app], stackSource: 'late-pause', scope: scope('r1') }), here(broken))).not.toHaveProperty(
      'request',
    );
  });

  it('a scope that does not parse is left out: the thread answers inflight and candidates', () => {
    const report = reportOf(stall({ stack: [app], stackSource: 'pause', scope: '{not json' }), here());
    expect(report).toMatchObject({ inflight: 3, candidates: [{ id: 'c' }] });
    expect(report).not.toHaveProperty('request');
  });

  it('a declared stall takes the scope current when expectBlocking() began', () => {
    const report = reportOf(stall({ expected: true, stackSkipped: 'expected' }), {
      ...here(),
      declaredScope: () => ({ id: 'declared' }),
    });
    expect(report).toMatchObject({
      expected: true,
      request: { id: 'declared' },
      requestSource: 'expectBlocking',
      stackSkipped: 'expected',
    });
    expect(report).not.toHaveProperty('candidates');
  });

  it('DeclaredBlocking raises the flag while expectBlocking() runs and keeps a copy of its scope once', () => {
    const beats = createHeartbeat();
    const declared = new DeclaredBlocking<Scope>(beats, () => ({ id: 'job-7' }));
    const seen = expectBlocking(() => Atomics.load(beats, SLOT.expected));
    expect(seen).toBe(1);
    expect(Atomics.load(beats, SLOT.expected)).toBe(0);
    expect(Atomics.load(beats, SLOT.expectedEnd)).not.toBe(0);
    expect(declared.take()).toEqual({ id: 'job-7' });
    expect(declared.take()).toBeUndefined();
    declared.close();
    expectBlocking(() => {});
    expect(declared.take()).toBeUndefined();
  });

  it('a stall a thread timed itself is expected when an expectBlocking() call ended within it', () => {
    const began = Number(process.hrtime.bigint()) / 1e6;
    expect(timedReport(150, 1, began)).toMatchObject({ stackSkipped: 'unavailable', stack: [] });
    expectBlocking(() => {});
    expect(timedReport(150, 1, began)).toMatchObject({ expected: true, stackSkipped: 'expected' });
  });
});
