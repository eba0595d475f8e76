// The watchdog's worker thread. Its functions are sent to the worker as source text (see
// workerSource()), so each must be self-contained: no imports, no module-level names, only
// `require` of node builtins inside the function bodies. That way one file serves the sources,
// the ESM build and the CJS build, with no second entry point to resolve at run time.

import type { MessagePort } from 'node:worker_threads';
import { createSourceMapper, type SourceMapLimits } from './sourcemap.js';
import type { StackSkipped, StackSource, WatchdogStackFrame } from './types.js';

/** Slots of the Int32Array over the SharedArrayBuffer both threads share. */
export const BEAT_MS = 0;
export const BEAT_SEQ = 1;
/** 1 while the main thread has an inspector server open: a debugger may be attached. */
export const BEAT_DEBUGGER = 2;
/** Set to 1 by the main thread when the process exits. */
export const BEAT_EXITING = 3;
/** 1 while the worker handles a stall or holds an inspector session: an exit must wait for it. */
export const BEAT_BUSY = 4;
/** The longest gap between two beats, ms, since the worker last took it. */
export const BEAT_GAP = 5;
/** 1 while the main thread runs inside expectBlocking(): a stall then takes no stack. */
export const BEAT_EXPECTED = 6;
/** When the latest expectBlocking() call ended, ms as in BEAT_MS: blocking after it is not declared. */
export const BEAT_EXPECTED_END = 7;
/** When the gap in BEAT_GAP ended, ms as in BEAT_MS: a missed stall is placed in time by it. */
export const BEAT_GAP_END = 8;
export const BEAT_SLOTS = 9;

/** The steps of a capture, in order; a fault can be injected at each (tests only). */
type CaptureStep = 'probe' | 'enable' | 'pause' | 'evaluate' | 'resume' | 'disconnect';

/**
 * A fault injected at a step of the next captures: `fail` rejects the command (or throws from
 * disconnect) without sending it, `hang` never answers (disconnect blocks the worker for 1 s),
 * `kill` ends the worker thread there. Used up after `times` captures (default 1).
 */
export interface Fault {
  step: CaptureStep;
  kind: 'fail' | 'hang' | 'kill';
  times?: number;
  /** Given to every watchdog thread the watchdog starts, restarts included; else to the first only. */
  everyWorker?: boolean;
}

/** What the main thread hands the worker (workerData). */
export interface WorkerConfig {
  heartbeat: SharedArrayBuffer;
  /** Messages both ways; the main thread can read it synchronously while it exits. */
  port: MessagePort;
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
  /** An inspector server was open at start: say once that stalls go without stacks meanwhile. */
  inspectorInUse: boolean;
  /** Longest wait for a command's answer while the main thread is paused, or after it ran again. */
  commandTimeoutMs: number;
  /** Longest wait for the main thread to take the pause while it is still blocked. */
  reachTimeoutMs: number;
  /** After a debugger was seen pausing the main thread, captures stay off this long. */
  debuggerQuietMs: number;
  /** Expression evaluated on the paused frame; returns JSON of { request, inflight, candidates }. */
  scopeExpression: string;
  maxFrames: number;
  /** Map frames through source maps (after the main thread runs again); undefined: do not. */
  sourceMaps?: SourceMapLimits;
  /** Scripts whose map is not decoded: decoding it ended a watchdog thread before. */
  deniedMaps: string[];
  faults: Fault[];
}

/** Messages from the worker. Times are monotonic ms (process.hrtime) unless named `at`. */
export type WorkerMessage =
  | { type: 'ready'; stacks: boolean }
  | { type: 'degraded'; reason: string }
  | { type: 'debugger'; reason: string }
  | { type: 'error'; what: string; message: string }
  | { type: 'sourcemap'; url: string; why: string }
  /** A script's map is about to be read and decoded: should this thread die meanwhile, the next does not try it. */
  | { type: 'mapping'; url: string; durationMs: number; at: number }
  /** The inspector session is closed and no capture will begin: the thread may be terminated. */
  | { type: 'let-go' }
  | {
      type: 'stall';
      durationMs: number;
      at: number;
      stack: WatchdogStackFrame[];
      stackSource: StackSource;
      /** JSON from the paused frame's scope expression, when a pause landed. */
      scope?: string;
      pauseDelayMs?: number;
      /** Monotonic µs (V8's profiler clock) of the stall, for the main thread's profile. */
      window: [number, number];
      /** The pause was late or failed: the main thread's profile may know the stack. */
      wantsProfile: boolean;
      stackSkipped?: StackSkipped;
      /** No stack because a debugger may be attached (`stackSkipped` is 'unavailable'). */
      debuggerAttached?: true;
      /** The main thread was inside expectBlocking() when the stall was seen. */
      expected?: true;
      enteredAfter?: 0 | 1;
    };

/** Messages to the worker. */
export type MainMessage = { type: 'exit' };

interface Location {
  scriptId: string;
  lineNumber: number;
  columnNumber?: number;
}

interface CallFrame {
  callFrameId: string;
  functionName: string;
  url?: string;
  location: Location;
  functionLocation?: Location;
}

interface PausedEvent {
  params: { callFrames: CallFrame[]; reason: string; hitBreakpoints?: string[] };
}

interface Captured {
  /** A late pause: 1 if its top frame was entered after the pause was asked, 0 if it was already running. */
  enteredAfter?: 0 | 1;
  stack: WatchdogStackFrame[];
  /** Each frame's script's sourceMappingURL as V8 read it, when it has one. */
  maps: (string | undefined)[];
  scope?: string;
  delayMs: number;
}

/** Runs in the worker. */
function workerMain(config: WorkerConfig, load: NodeJS.Require, mapperOf: typeof createSourceMapper): void {
  // Slots as in BEAT_* (this function cannot see module constants).
  const SEQ = 1;
  const DEBUGGER = 2;
  const EXITING = 3;
  const BUSY = 4;
  const GAP = 5;
  const EXPECTED = 6;
  const EXPECTED_END = 7;
  const GAP_END = 8;
  const beat = new Int32Array(config.heartbeat);
  const port = config.port;
  const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
  const send = (message: WorkerMessage) => port.postMessage(message);
  const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
  const fail = (what: string, error: unknown) => send({ type: 'error', what, message: messageOf(error) });

  // Every timer here is unref'd: the port's listener is what keeps this thread alive, and a nap
  // ends early when the process exits or an awaited answer comes.
  const wakers = new Set<() => void>();
  const wakeAll = () => {
    for (const wake of wakers) wake();
  };
  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms).unref();
      wakers.add(done);
    });

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

  const faults = config.faults.map((fault) => ({ ...fault, left: fault.times ?? 1 }));
  /** The fault a test injected at this step, if one is left. */
  const faultAt = (step: CaptureStep): Fault['kind'] | undefined => {
    const fault = faults.find((f) => f.step === step && f.left > 0);
    if (!fault) return undefined;
    fault.left--;
    if (fault.kind === 'kill') process.exit(1);
    return fault.kind;
  };

  let stacks = config.captureStacks;
  // biome-ignore lint/suspicious/noExplicitAny: node:inspector, when the build has it.
  let inspector: any;
  if (stacks) {
    try {
      inspector = load('node:inspector');
    } catch (error) {
      stacks = false;
      send({ type: 'degraded', reason: `the inspector is not available (${messageOf(error)}); stalls are timed without stacks` });
    }
  }
  let debuggerSaid = false;
  const sayDebugger = (reason: string) => {
    if (debuggerSaid) return;
    debuggerSaid = true;
    send({ type: 'debugger', reason });
  };
  const inspectorOpen = 'another debugger may be attached (the inspector is open); stalls are timed without stacks';
  if (stacks && config.inspectorInUse) sayDebugger(inspectorOpen);
  let debuggerSeenAt = Number.NEGATIVE_INFINITY;

  // A session stays connected only while it is needed: a process that exits with one connected
  // prints "Waiting for the debugger to disconnect...". debuggerMode 'always' keeps it; otherwise
  // it lives for one capture.
  const keepSession = config.debuggerMode === 'always';
  // biome-ignore lint/suspicious/noExplicitAny: the inspector Session.
  let session: any;
  // biome-ignore lint/suspicious/noExplicitAny: a session whose disconnect failed, retried later.
  let stale: any;
  let debuggerOn = false;
  const scripts = new Map<string, string>();
  const sourceMapUrls = new Map<string, string>();
  let mapFrame: ReturnType<typeof createSourceMapper> | undefined;
  const skippedMaps = new Set<string>();
  /** The stall whose stack is being mapped: reported by the main thread should this thread die meanwhile. */
  let mapping = { durationMs: 0, at: 0 };
  /** Source-maps a captured stack; runs after the main thread was let go. */
  const mapStack = (captured: Captured): WatchdogStackFrame[] => {
    if (!config.sourceMaps) return captured.stack;
    try {
      mapFrame ??= mapperOf(
        load,
        config.sourceMaps,
        (url, why) => {
          // Once per script, and a bounded number of scripts.
          if (skippedMaps.has(url) || skippedMaps.size >= 100) return;
          skippedMaps.add(url);
          send({ type: 'sourcemap', url, why });
        },
        { onLoad: (url) => send({ type: 'mapping', url, ...mapping }), denied: config.deniedMaps },
      );
      const map = mapFrame;
      return captured.stack.map((frame, i) => map(frame, captured.maps[i]));
    } catch (error) {
      fail('stall frames could not be source-mapped', error);
      return captured.stack;
    }
  };
  /** Our Debugger.pause was answered and its pause has not been seen yet. */
  let pauseAsked = false;
  /** The capture waiting for its pause. */
  let waiting: ((paused: { frames: CallFrame[]; at: number } | 'foreign') => void) | undefined;
  let exiting = false;
  let handling = false;

  const post = (method: string, params: object = {}, step?: CaptureStep, onAnswer?: () => void) => {
    const fault = step && faultAt(step);
    if (fault === 'fail') return Promise.reject(new Error(`${method} failed (injected)`));
    if (fault === 'hang') return new Promise<Record<string, unknown>>(() => {});
    const to = session;
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      to.post(method, params, (error: Error | null, result: Record<string, unknown>) => {
        if (error) return reject(error);
        onAnswer?.();
        resolve(result);
      });
    });
  };

  /** Rejects when `promise` is not settled within commandTimeoutMs: for answers due at once. */
  const within = <T>(promise: Promise<T>, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${config.commandTimeoutMs} ms`)), config.commandTimeoutMs);
      timer.unref();
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  };

  /**
   * Waits for an answer the main thread gives only when it next runs JavaScript: without limit
   * while the stall lasts (waiting costs the main thread nothing, and native code can hold it for
   * seconds), then commandTimeoutMs once it beats again, and never longer than reachTimeoutMs.
   */
  const whileBlocked = async <T>(promise: Promise<T>, seq: number, what: string): Promise<T> => {
    let out: { value: T } | { error: unknown } | undefined;
    promise.then(
      (value) => {
        out = { value };
        wakeAll();
      },
      (error) => {
        out = { error };
        wakeAll();
      },
    );
    const started = nowMs();
    let ranAt: number | undefined;
    while (!out) {
      const now = nowMs();
      // An exiting process will not come back for a pause: give up at once and let it go.
      if (exiting) throw new Error(`${what}: the process exits`);
      if (ranAt === undefined && Atomics.load(beat, SEQ) !== seq) ranAt = now;
      if (now - started > config.reachTimeoutMs || (ranAt !== undefined && now - ranAt > config.commandTimeoutMs)) {
        throw new Error(`${what}: no answer`);
      }
      await nap(config.pollMs);
    }
    if ('error' in out) throw out.error;
    return out.value;
  };

  const onPaused = ({ params }: PausedEvent) => {
    // Ours only if it comes after the answer to our Debugger.pause and hit no breakpoint. A thread
    // already stopped by a debugger reports that pause while our Debugger.enable is handled, before
    // that answer. A pause we did not cause is never resumed.
    const ours = pauseAsked && params.reason === 'other' && !params.hitBreakpoints?.length;
    const capture = waiting;
    waiting = undefined;
    if (!ours) {
      debuggerSeenAt = nowMs();
      capture?.('foreign');
      return;
    }
    pauseAsked = false;
    if (capture) capture({ frames: params.callFrames, at: nowMs() });
    // Our pause, landing after its capture gave up: closing the session lets it go.
    else drop();
  };

  const connect = () => {
    if (session) return;
    const opened = new inspector.Session();
    opened.connectToMainThread();
    session = opened;
    opened.on('Debugger.scriptParsed', (m: { params: { scriptId: string; url: string; sourceMapURL?: string } }) => {
      if (m.params.url) scripts.set(m.params.scriptId, m.params.url);
      if (m.params.sourceMapURL) sourceMapUrls.set(m.params.scriptId, m.params.sourceMapURL);
    });
    opened.on('Debugger.paused', onPaused);
  };

  /** Closes the session; V8 resumes a thread whose pausing session goes away. False if that failed. */
  const drop = (): boolean => {
    const closing = session;
    session = undefined;
    debuggerOn = false;
    pauseAsked = false;
    scripts.clear();
    sourceMapUrls.clear();
    if (!closing) return true;
    try {
      const fault = faultAt('disconnect');
      if (fault === 'fail') throw new Error('disconnect failed (injected)');
      if (fault === 'hang') {
        const end = nowMs() + 1000;
        while (nowMs() < end) nowMs();
      }
      closing.disconnect();
      return true;
    } catch (error) {
      stale = closing;
      fail('the inspector session could not be closed', error);
      return false;
    }
  };

  const retryStale = () => {
    const closing = stale;
    stale = undefined;
    try {
      closing?.disconnect();
    } catch (error) {
      stale = closing;
      fail('the inspector session could not be closed', error);
    }
  };

  const enableDebugger = () => {
    if (debuggerOn) return Promise.resolve();
    debuggerOn = true;
    // `debugger;` statements in the app must not stop it while our session is attached.
    return Promise.all([post('Debugger.enable', {}, 'enable'), post('Debugger.setBreakpointsActive', { active: false })]).then(() => {});
  };

  const resume = async (): Promise<boolean> => {
    try {
      await within(post('Debugger.resume', {}, 'resume'), 'Debugger.resume');
      return true;
    } catch (error) {
      fail('the main thread could not be resumed; the inspector session is closed instead', error);
      return false;
    }
  };

  /**
   * Lets the main thread go: resumes it if we paused it, and closes the session if resuming
   * failed, the capture was cut short, or sessions last one capture.
   */
  const release = async (paused: boolean) => {
    const resumed = paused && (await resume());
    if (resumed && keepSession) return;
    if (drop() || !paused || resumed) return;
    // Neither worked: ending this thread closes its session, which resumes the main thread; the
    // main thread then times stalls on its own.
    process.exit(1);
  };

  const readScope = async (): Promise<string | undefined> => {
    try {
      // Runtime.evaluate, not evaluateOnCallFrame: in a frame of Node's own modules, globals such
      // as Symbol are not in scope, and evaluateOnCallFrame swallows a pending V8 termination (a vm
      // timeout, measured on Node 20, 24 and 26). The async context is the paused one either way.
      // No `timeout`: V8 cancels any pending termination when an evaluation with one ends, which
      // left a vm timeout or worker.terminate() that fired during the pause lost for good. The
      // reader is loopsight's own bounded code (and the route resolvers requests run anyway).
      const params = { expression: config.scopeExpression, returnByValue: true, silent: true };
      const evaluated = (await within(post('Runtime.evaluate', params, 'evaluate'), 'Runtime.evaluate')) as {
        result?: { value?: unknown };
      };
      const value = evaluated.result?.value;
      return typeof value === 'string' ? value : undefined;
    } catch (error) {
      fail('the request scope could not be read on the paused thread', error);
      return undefined;
    }
  };

  /**
   * Whether a late pause's top frame was entered after the pause was asked. V8 takes the interrupt
   * at the entry of the first function called once native code returned (the break itself may
   * come a statement or two later), so a top frame that was already running is one that had made
   * a call before the point where it stopped: the native call that blocked. One that made none
   * was entered afterwards. Undefined when that cannot be told.
   */
  const atEntry = async (frame: CallFrame): Promise<boolean | undefined> => {
    if (!frame.functionLocation) return undefined;
    try {
      const params = { start: frame.functionLocation, end: frame.location, restrictToFunction: true };
      const answer = (await within(post('Debugger.getPossibleBreakpoints', params), 'Debugger.getPossibleBreakpoints')) as {
        locations?: { type?: string }[];
      };
      return Array.isArray(answer.locations) ? !answer.locations.some((l) => l?.type === 'call') : undefined;
    } catch {
      return undefined;
    }
  };

  /**
   * Pauses the main thread, reads its stack and scope, and lets it go. Everything after the
   * pause is asked for sits in the one `finally` that releases the thread.
   */
  const capture = async (seq: number): Promise<Captured | 'foreign'> => {
    retryStale();
    connect();
    // Commands reach the main thread at V8's next interrupt check, which native code such as
    // JSON.parse does not make. When the answer to a trivial command sent first comes tells how
    // long that took: if long, the blocking work had already returned when the pause landed. The
    // command runs no JavaScript: an evaluation on the running thread (process.hrtime(), as
    // before) swallows a V8 termination that comes while it runs (a vm timeout lost, measured).
    const asked = nowMs();
    let reachedAt: number | undefined;
    post('Runtime.getIsolateId', {}, 'probe').then(
      () => {
        reachedAt = nowMs();
      },
      () => {},
    );
    const landing = new Promise<{ frames: CallFrame[]; at: number } | 'foreign'>((resolve) => {
      waiting = resolve;
    });
    let paused = false;
    try {
      // Pipelined: the pause is dispatched right behind the enable, in the same interrupt.
      const asking = Promise.all([
        enableDebugger(),
        post('Debugger.pause', {}, 'pause', () => {
          pauseAsked = true;
        }),
      ]);
      await whileBlocked(asking, seq, 'the debugger could not be enabled and asked to pause');
      const landed = await whileBlocked(landing, seq, 'the main thread did not pause');
      if (landed === 'foreign') return 'foreign';
      paused = true;
      const scope = landed.frames[0] ? await readScope() : undefined;
      const frames = landed.frames.slice(0, config.maxFrames);
      const stack = frames.map((f) => ({
        functionName: f.functionName,
        url: f.url || scripts.get(f.location.scriptId) || '',
        line: f.location.lineNumber + 1,
        column: (f.location.columnNumber ?? 0) + 1,
      }));
      const maps = frames.map((f) => sourceMapUrls.get(f.location.scriptId));
      const delayMs = (reachedAt ?? landed.at) - asked;
      const enteredAfter = delayMs > config.latePauseMs && frames[0] ? await atEntry(frames[0]) : undefined;
      const captured: Captured = { stack, maps, delayMs };
      if (scope !== undefined) captured.scope = scope;
      if (enteredAfter !== undefined) captured.enteredAfter = enteredAfter ? 1 : 0;
      return captured;
    } finally {
      waiting = undefined;
      await release(paused);
    }
  };

  const debuggerAttached = () => Atomics.load(beat, DEBUGGER) === 1 || nowMs() - debuggerSeenAt < config.debuggerQuietMs;

  /** The stall ends when the main thread beats again (its last beat is written as the process exits). */
  const stallEnd = async (seq: number) => {
    while (Atomics.load(beat, SEQ) === seq && !exiting) await nap(config.pollMs);
  };

  /**
   * While a stall that began inside expectBlocking() lasts: when the declared work ended (ms as
   * BEAT_MS), once the thread has stayed blocked a threshold past it; undefined if it ran again.
   */
  const declaredEnd = async (seq: number): Promise<number | undefined> => {
    while (Atomics.load(beat, SEQ) === seq && !exiting) {
      if (Atomics.load(beat, EXPECTED) === 0) {
        const end = Atomics.load(beat, EXPECTED_END);
        if ((((Math.floor(nowMs()) | 0) - end) | 0) >= config.thresholdMs) return end;
      }
      await nap(config.pollMs);
    }
    return undefined;
  };

  /**
   * Handles the stall that began with the beat `lastBeat`, `age` ms ago, until it ends. `after`:
   * the stall is the blocking that followed expectBlocking() in the same turn, from `lastBeat` on.
   */
  const stalled = async (lastBeat: number, seq: number, now: number, age: number, after = false): Promise<void> => {
    const startedMono = now - age;
    const startedAt = Date.now() - age;
    let captured: Captured | undefined;
    let skipped: StackSkipped | undefined;
    let attached = false;
    // Began inside expectBlocking(): the flag is still up, or (this thread woke late, as on a
    // starved machine) the declared work already ended within this stall, after its last beat.
    const lastDeclaredEnd = Atomics.load(beat, EXPECTED_END);
    const declaredEndedSince = ((lastDeclaredEnd - lastBeat) | 0) > 0 && (((Math.floor(now) | 0) - lastDeclaredEnd) | 0) >= 0;
    const expected = !after && (Atomics.load(beat, EXPECTED) === 1 || declaredEndedSince);
    if (expected) {
      // expectBlocking() covers only its own run: blocking that follows it is a stall of its own.
      const end = await declaredEnd(seq);
      if (end !== undefined) {
        const declaredMs = ((end - lastBeat) | 0) - config.heartbeatMs;
        if (declaredMs >= config.thresholdMs) {
          send({
            type: 'stall',
            durationMs: declaredMs,
            at: startedAt,
            stack: [],
            stackSource: 'none',
            window: [startedMono * 1000, (startedMono + declaredMs) * 1000],
            wantsProfile: false,
            stackSkipped: 'expected',
            expected: true,
          });
        }
        const restNow = nowMs();
        return stalled(end, seq, restNow, ((Math.floor(restNow) | 0) - end) | 0, true);
      }
      skipped = 'expected';
    } else if (!config.captureStacks) skipped = 'disabled';
    else if (!stacks) skipped = 'unavailable';
    else if (debuggerAttached()) attached = true;
    else if (!takeToken()) skipped = 'rate-limited';
    else {
      try {
        const result = await capture(seq);
        if (result === 'foreign') attached = true;
        else captured = result;
      } catch (error) {
        fail('a stall stack could not be captured', error);
      }
    }
    if (attached) {
      skipped = 'unavailable';
      sayDebugger(
        Atomics.load(beat, DEBUGGER) === 1
          ? inspectorOpen
          : 'a debugger paused the main thread; stalls are timed without stacks while one may be attached',
      );
    }
    // Nothing of ours holds the main thread from here on: this wait only reads shared memory.
    await stallEnd(seq);
    // A debugger that held the thread is likely still attached: stay quiet from its last stop.
    if (attached && debuggerSeenAt > startedMono) debuggerSeenAt = nowMs();
    const endedMono = nowMs();
    // The gap the main thread measured, not the age of its latest beat: a capture that outlasts
    // the stall reads the beat several beats after the stall ended.
    const gapMs = Atomics.exchange(beat, GAP, 0) || (Atomics.load(beat, 0) - lastBeat) | 0 || endedMono - startedMono;
    // How late the loop ran: the gap between beats minus the beat interval; for the blocking after
    // expectBlocking(), from its end to the next beat.
    const durationMs = after
      ? Math.max(0, (Atomics.load(beat, 0) - lastBeat) | 0 || endedMono - startedMono)
      : Math.max(0, gapMs - config.heartbeatMs);
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
    if (expected) message.expected = true;
    if (captured) {
      message.pauseDelayMs = Math.round(captured.delayMs * 10) / 10;
      if (captured.scope !== undefined) message.scope = captured.scope;
      mapping = { durationMs, at: startedAt };
      message.stack = mapStack(captured);
      message.stackSource = late ? 'late-pause' : 'pause';
      if (late && captured.enteredAfter !== undefined) message.enteredAfter = captured.enteredAfter;
    }
    if (skipped) message.stackSkipped = skipped;
    if (attached) message.debuggerAttached = true;
    send(message);
  };

  /** The process exits: close the session so that Node does not wait for a debugger, and say so. */
  const letGo = () => {
    drop();
    retryStale();
    Atomics.store(beat, BUSY, 0);
    Atomics.notify(beat, BUSY);
    send({ type: 'let-go' });
  };

  /**
   * A stall that began and ended while this thread could not look (mapping a large source map, or
   * not scheduled on a loaded machine): the main thread's longest gap between beats tells it. It is
   * reported without a stack, never lost. It asks for no profile: taking one blocks the main thread
   * in turn (hundreds of ms on Node 24 under load), and the stall that follows, the one the profile
   * is for, would then find the profiler busy.
   */
  const missed = (now: number) => {
    if (Atomics.load(beat, GAP) - config.heartbeatMs < config.thresholdMs) return;
    const gapMs = Atomics.exchange(beat, GAP, 0);
    const durationMs = gapMs - config.heartbeatMs;
    if (durationMs < config.thresholdMs) return;
    // The beat that ended the gap, not the last one: shorter gaps since leave the longest in place,
    // and a window placed after the stall would take its profile stack from later work.
    const endedAgo = ((Math.floor(now) | 0) - Atomics.load(beat, GAP_END)) | 0;
    const endedMono = now - endedAgo;
    send({
      type: 'stall',
      durationMs,
      at: Date.now() - endedAgo - gapMs,
      stack: [],
      stackSource: 'none',
      window: [(endedMono - gapMs) * 1000, endedMono * 1000],
      wantsProfile: false,
      stackSkipped: 'unavailable',
    });
  };

  /**
   * Checks the heartbeat and sleeps until the last beat could first turn stale: on a healthy loop
   * that is one wake-up per threshold (10 a second at 100 ms) rather than one per beat, and a stall
   * is still seen the moment it reaches the threshold.
   */
  const check = () => {
    if (exiting) return;
    // Slots as in BEAT_MS / BEAT_SEQ.
    const lastBeat = Atomics.load(beat, 0);
    const seq = Atomics.load(beat, SEQ);
    if (seq === 0) {
      setTimeout(check, config.pollMs).unref(); // no heartbeat yet
      return;
    }
    const now = nowMs();
    // Int32 arithmetic, so the wrap of the ms counter every 24.8 days is harmless.
    const age = ((Math.floor(now) | 0) - lastBeat) | 0;
    if (age < config.thresholdMs) {
      missed(now);
      setTimeout(check, Math.max(1, config.thresholdMs - age)).unref();
      return;
    }
    // Busy before reading EXITING, the main thread sets EXITING before reading BUSY: one of the
    // two sees the other, so an exit never misses a capture that has begun.
    handling = true;
    Atomics.store(beat, GAP, 0);
    Atomics.store(beat, BUSY, 1);
    if (Atomics.load(beat, EXITING) === 1) exiting = true;
    const handled = exiting ? Promise.resolve() : stalled(lastBeat, seq, now, age);
    handled
      .catch((error) => fail('the stall watchdog failed', error))
      .finally(() => {
        handling = false;
        if (exiting) return letGo();
        if (!session && !stale) Atomics.store(beat, BUSY, 0);
        setTimeout(check, config.pollMs).unref();
      });
  };

  port.on('message', (message: MainMessage) => {
    if (message?.type !== 'exit') return;
    exiting = true;
    wakeAll();
    if (!handling) letGo();
  });

  const begin = async () => {
    setTimeout(check, config.pollMs).unref();
    if (stacks && keepSession) {
      try {
        Atomics.store(beat, BUSY, 1);
        connect();
        await within(enableDebugger(), 'Debugger.enable');
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
const createSourceMapper = ${createSourceMapper.toString()};
const workerMain = ${workerMain.toString()};
workerMain(require('node:worker_threads').workerData, require, createSourceMapper);
`;
}
