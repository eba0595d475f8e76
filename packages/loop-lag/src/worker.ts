// The watchdog's worker thread. Its functions are sent to the worker as source text (see
// workerSource()), so each must be self-contained: no imports, no module-level names, only
// `require` of node builtins inside the function bodies. That way one file serves the sources,
// the ESM build and the CJS build, with no second entry point to resolve at run time.

import type { WatchdogStackFrame } from './types.js';

/** Slots of the Int32Array over the SharedArrayBuffer the main thread writes. */
export const BEAT_MS = 0;
export const BEAT_SEQ = 1;

/** What the main thread hands the worker (workerData). */
export interface WorkerConfig {
  heartbeat: SharedArrayBuffer;
  thresholdMs: number;
  heartbeatMs: number;
  pollMs: number;
  captureStacks: boolean;
  maxStacksPerMinute: number;
  /** A pause that lands later than this after it was asked for was delayed by native code. */
  latePauseMs: number;
  /** The main thread samples a profile: ask for its stack when a pause was late or failed. */
  profiler: boolean;
  debuggerMode: 'always' | 'on-stall';
  /** Set when another debugger may be attached (--inspect): no pausing then. */
  inspectorInUse: boolean;
  /** Expression evaluated on the paused frame; returns JSON of { request, inflight, candidates }. */
  scopeExpression: string;
  maxFrames: number;
}

/** Messages from the worker. Times are monotonic ms (process.hrtime) unless named `at`. */
export type WorkerMessage =
  | { type: 'ready'; stacks: boolean }
  | { type: 'degraded'; reason: string }
  | { type: 'error'; what: string; message: string }
  | {
      type: 'stall';
      durationMs: number;
      at: number;
      stack: WatchdogStackFrame[];
      stackSource: 'pause' | 'late-pause' | 'profile' | 'none';
      /** JSON from the paused frame's scope expression, when a pause landed. */
      scope?: string;
      pauseDelayMs?: number;
      /** Monotonic µs (V8's profiler clock) of the stall, for the main thread's profile. */
      window: [number, number];
      /** The pause was late or failed: the main thread's profile may know the stack. */
      wantsProfile: boolean;
      stackSkipped?: 'rate-limited' | 'disabled' | 'unavailable';
    };

/** Runs in the worker. */
export function workerMain(config: WorkerConfig, load: NodeJS.Require): void {
  // `load` is the worker's require: a literal require() here would be rewritten by the ESM build.
  const { parentPort } = load('node:worker_threads') as typeof import('node:worker_threads');
  const port = parentPort as import('node:worker_threads').MessagePort;
  const beat = new Int32Array(config.heartbeat);
  const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
  const send = (message: WorkerMessage) => port.postMessage(message);
  const fail = (what: string, error: unknown) =>
    send({ type: 'error', what, message: error instanceof Error ? error.message : String(error) });

  // Token bucket for stack captures: stalls beyond it are still counted and timed.
  let tokens = config.maxStacksPerMinute;
  let refilledAt = nowMs();
  const takeToken = () => {
    const now = nowMs();
    tokens = Math.min(config.maxStacksPerMinute, tokens + ((now - refilledAt) * config.maxStacksPerMinute) / 60_000);
    refilledAt = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };

  // biome-ignore lint/suspicious/noExplicitAny: the inspector Session, when available.
  let session: any;
  const scripts = new Map<string, string>();
  let debuggerOn = false;
  const post = (method: string, params?: object) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      session.post(method, params ?? {}, (error: Error | null, result: Record<string, unknown>) =>
        error ? reject(error) : resolve(result),
      );
    });

  let stacks = config.captureStacks && !config.inspectorInUse;
  if (config.captureStacks && config.inspectorInUse) {
    send({ type: 'degraded', reason: 'another debugger may be attached (the inspector is open); stalls are timed without stacks' });
  }
  // biome-ignore lint/suspicious/noExplicitAny: node:inspector, when the build has it.
  let inspector: any;
  if (stacks) {
    try {
      inspector = load('node:inspector');
    } catch (error) {
      stacks = false;
      send({
        type: 'degraded',
        reason: `the inspector is not available (${error instanceof Error ? error.message : String(error)}); stalls are timed without stacks`,
      });
    }
  }
  // A session stays connected only while it is needed: a process that exits with one connected
  // prints "Waiting for the debugger to disconnect...". debuggerMode 'always' keeps it; otherwise
  // it lives for one capture.
  const keepSession = config.debuggerMode === 'always';
  // One capture at a time: the paused event resolves the pending pause.
  let pendingPause: ((frames: unknown) => void) | undefined;
  const connect = () => {
    if (session) return;
    session = new inspector.Session();
    session.connectToMainThread();
    session.on('Debugger.scriptParsed', (m: { params: { scriptId: string; url: string } }) => {
      if (m.params.url) scripts.set(m.params.scriptId, m.params.url);
    });
    session.on('Debugger.paused', (m: { params: { callFrames: unknown[] } }) => {
      const resolve = pendingPause;
      pendingPause = undefined;
      if (resolve) resolve(m.params.callFrames);
      else post('Debugger.resume').catch(() => {});
    });
  };
  const disconnect = () => {
    if (!session || keepSession) return;
    session.disconnect();
    session = undefined;
    debuggerOn = false;
    scripts.clear();
  };

  const enableDebugger = async () => {
    if (debuggerOn) return;
    // Pipelined: the pause that follows is dispatched right behind, in the same interrupt.
    debuggerOn = true;
    await post('Debugger.enable');
    // `debugger;` statements in the app must not stop it while our session is attached.
    await post('Debugger.setBreakpointsActive', { active: false });
  };
  const disableDebugger = async () => {
    if (!debuggerOn || config.debuggerMode === 'always') return;
    debuggerOn = false;
    scripts.clear();
    await post('Debugger.disable');
  };

  interface CallFrame {
    callFrameId: string;
    functionName: string;
    url?: string;
    location: { scriptId: string; lineNumber: number; columnNumber?: number };
  }

  const pause = async (): Promise<{ stack: WatchdogStackFrame[]; scope?: string; delayMs: number } | undefined> => {
    const paused = new Promise<unknown>((resolve) => {
      pendingPause = resolve;
    });
    // Commands reach the main thread at V8's next interrupt check, which native code such as
    // JSON.parse does not make. The reply to a trivial command sent first tells how long that took:
    // if long, the blocking work had already returned when the pause landed.
    connect();
    const asked = nowMs();
    const reached = post('Runtime.getHeapUsage').then(nowMs);
    const enabling = enableDebugger();
    const pausing = post('Debugger.pause');
    await enabling;
    await pausing;
    // A pause lands at V8's next interrupt check, which the heartbeat guarantees comes; the
    // timeout only guards against a session that stopped answering.
    let timer: NodeJS.Timeout | undefined;
    const frames = (await Promise.race([
      paused,
      new Promise((_, reject) => {
        timer = setTimeout(() => {
          pendingPause = undefined;
          reject(new Error('no pause within 30 s'));
        }, 30_000);
      }),
    ]).finally(() => clearTimeout(timer))) as CallFrame[];
    const delayMs = (await reached) - asked;
    let scope: string | undefined;
    try {
      const top = frames[0];
      if (top) {
        // Runtime.evaluate, not evaluateOnCallFrame: in a frame of Node's own modules, globals such
        // as Symbol are not in scope. The async context is the paused one either way.
        const evaluated = (await post('Runtime.evaluate', {
          expression: config.scopeExpression,
          returnByValue: true,
          silent: true,
        })) as { result?: { value?: unknown } };
        if (typeof evaluated.result?.value === 'string') scope = evaluated.result.value;
      }
    } finally {
      await post('Debugger.resume');
    }
    const stack = frames.slice(0, config.maxFrames).map((f) => ({
      functionName: f.functionName,
      url: f.url || scripts.get(f.location.scriptId) || '',
      line: f.location.lineNumber + 1,
      column: (f.location.columnNumber ?? 0) + 1,
    }));
    return scope === undefined ? { stack, delayMs } : { stack, scope, delayMs };
  };

  /** Handles the stall that began with the beat `lastBeat`, `age` ms ago, until it ends. */
  const stalled = async (lastBeat: number, seq: number, now: number, age: number) => {
    const startedMono = now - age;
    const startedAt = Date.now() - age;
    let captured: Awaited<ReturnType<typeof pause>>;
    let skipped: 'rate-limited' | 'disabled' | 'unavailable' | undefined;
    if (!config.captureStacks) skipped = 'disabled';
    else if (!stacks) skipped = 'unavailable';
    else if (!takeToken()) skipped = 'rate-limited';
    else {
      try {
        captured = await pause();
      } catch (error) {
        fail('a stall stack could not be captured', error);
      }
    }
    // The stall ends when the main thread beats again.
    while (Atomics.load(beat, 1) === seq) await new Promise((r) => setTimeout(r, config.pollMs));
    const endedMono = nowMs();
    const gapMs = (Atomics.load(beat, 0) - lastBeat) | 0 || endedMono - startedMono;
    // How late the loop ran: the gap between beats minus the beat interval.
    const durationMs = Math.max(0, gapMs - config.heartbeatMs);
    try {
      if (durationMs < config.thresholdMs) return;
      const late = captured !== undefined && captured.delayMs > config.latePauseMs;
      const message: WorkerMessage = {
        type: 'stall',
        durationMs,
        at: startedAt,
        stack: [],
        stackSource: 'none',
        window: [startedMono * 1000, (startedMono + gapMs) * 1000],
        wantsProfile: config.profiler && (late || (captured === undefined && !skipped && stacks)),
      };
      if (captured) {
        message.pauseDelayMs = Math.round(captured.delayMs * 10) / 10;
        if (captured.scope !== undefined) message.scope = captured.scope;
        message.stack = captured.stack;
        message.stackSource = late ? 'late-pause' : 'pause';
      }
      if (skipped) message.stackSkipped = skipped;
      send(message);
    } finally {
      if (keepSession) {
        if (debuggerOn) disableDebugger().catch((error) => fail('the debugger could not be disabled', error));
      } else {
        try {
          disconnect();
        } catch (error) {
          fail('the inspector session could not be closed', error);
        }
      }
    }
  };

  /**
   * Checks the heartbeat and sleeps until the last beat could first turn stale: on a healthy loop
   * that is one wake-up per threshold (10 a second at 100 ms) rather than one per beat, and a stall
   * is still seen the moment it reaches the threshold.
   */
  const check = () => {
    // Slots as in BEAT_MS / BEAT_SEQ (this function cannot see module constants).
    const lastBeat = Atomics.load(beat, 0);
    const seq = Atomics.load(beat, 1);
    if (seq === 0) {
      setTimeout(check, config.pollMs); // no heartbeat yet
      return;
    }
    const now = nowMs();
    // Int32 arithmetic, so the wrap of the ms counter every 24.8 days is harmless.
    const age = ((Math.floor(now) | 0) - lastBeat) | 0;
    if (age < config.thresholdMs) {
      setTimeout(check, Math.max(1, config.thresholdMs - age));
      return;
    }
    // The inspector's replies are not handles: without one, the worker would exit mid-capture.
    const keepAlive = setInterval(() => {}, 60_000);
    stalled(lastBeat, seq, now, age)
      .catch((error) => fail('the stall watchdog failed', error))
      .finally(() => {
        clearInterval(keepAlive);
        setTimeout(check, config.pollMs);
      });
  };

  const begin = async () => {
    // First, so the worker has a live handle while it awaits the inspector's replies.
    setTimeout(check, config.pollMs);
    if (stacks && keepSession) {
      try {
        connect();
        if (config.debuggerMode === 'always') await enableDebugger();
      } catch (error) {
        fail('the inspector could not be set up', error);
      }
    }
    send({ type: 'ready', stacks });
  };
  begin();
}

/** The worker's source: the functions above and a call with the config from workerData. */
export function workerSource(): string {
  return `'use strict';
const workerMain = ${workerMain.toString()};
workerMain(require('node:worker_threads').workerData, require);
`;
}
