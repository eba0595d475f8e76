import { createRequire } from 'node:module';
import { isMainThread, MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { type ExpectedFlag, expectedState } from './expected.js';
import { checkWatchdogOptions, LOOP_LAG_DEFAULTS } from './options.js';
import { dominantStack, MainThreadProfiler, RESTART_MS } from './profile.js';
import { copyCandidates, scopeJson } from './scope.js';
import { mapStackFrames, SOURCE_MAP_LIMITS } from './sourcemap.js';
import { ThreadWatchdog } from './threads.js';
import { ask, releaseThreads, threadsSource } from './threads-worker.js';
import type { RequestSource, StallWatchdog, StallWatchdogOptions, WatchdogStallReport, WatchdogStatus } from './types.js';
import {
  BEAT_BUSY,
  BEAT_DEBUGGER,
  BEAT_EXITING,
  BEAT_EXPECTED,
  BEAT_EXPECTED_END,
  BEAT_GAP,
  BEAT_GAP_END,
  BEAT_MS,
  BEAT_SEQ,
  BEAT_SLOTS,
  type Fault,
  type MainMessage,
  type WorkerConfig,
  type WorkerMessage,
  workerSource,
} from './worker.js';

const REGISTRY = Symbol.for('loopsight.loop-lag.scopes.v1');
/** Shared by every copy of this module (ESM and CJS builds, two installs): scope reader keys stay unique. */
const NEXT_KEY = Symbol.for('loopsight.loop-lag.next-key.v1');
const MAX_FRAMES = 32;

type ScopeReader = () => string | undefined;

function registry(): Record<string, ScopeReader> {
  const g = globalThis as unknown as Record<symbol, Record<string, ScopeReader> | undefined>;
  g[REGISTRY] ??= Object.create(null) as Record<string, ScopeReader>;
  return g[REGISTRY];
}

function nextKey(): string {
  const g = globalThis as unknown as Record<symbol, number | undefined>;
  const id = g[NEXT_KEY] ?? 0;
  g[NEXT_KEY] = id + 1;
  return `w${id}`;
}

/** A frame of the application's own code, when the caller gives no frameFilter. */
const isApplicationUrl = (url: string) => url !== '' && !url.startsWith('node:') && !/[\\/]node_modules[\\/]/.test(url);

const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6;

/** The inspector's `url()`, or nothing when Node was built without the inspector. */
function inspectorUrl(): (() => string | undefined) | undefined {
  try {
    // Loaded lazily: a Node built without the inspector throws on import, and must still run.
    return (createRequire(`${process.cwd()}/`)('node:inspector') as typeof import('node:inspector')).url;
  } catch {
    return undefined;
  }
}

/** How long a process exit waits, at most, for the worker to let go of the main thread. */
const EXIT_WAIT_MS = 100;
/** How long stop() waits for the worker to close its inspector session (a capture under way gives up within this). */
const LET_GO_WAIT_MS = 1_000;

/** A watchdog thread that dies is started again at most this often in an hour; past it, stalls are timed on the main thread. */
const MAX_RESTARTS_PER_HOUR = 3;
const HOUR_MS = 3_600_000;
/** Scripts whose map ended a watchdog thread, kept so the next thread does not decode them. */
const MAX_DENIED_MAPS = 100;

/** Test seams: not public API, read from the options object like `workerSource`. */
interface InternalOptions {
  workerSource?: string;
  faults?: Fault[];
  commandTimeoutMs?: number;
  reachTimeoutMs?: number;
  debuggerQuietMs?: number;
}

/**
 * Watches the main thread's event loop from a worker thread. The main thread only writes a
 * heartbeat into shared memory from an unref'd interval; the worker notices when it stops, pauses
 * the main thread through the inspector to read the stack and the request scope, and reports the
 * stall once the loop runs again. Nothing runs on the request path.
 *
 * If no worker can run, stalls are still timed on the main thread, without stacks.
 */
class Watchdog<S extends object> implements StallWatchdog {
  readonly #options: StallWatchdogOptions<S>;
  readonly #key = nextKey();
  readonly #heartbeatMs: number;
  readonly #captureStacks: boolean;
  #beats: Int32Array | undefined;
  #timer: NodeJS.Timeout | undefined;
  #worker: Worker | undefined;
  #port: MessagePort | undefined;
  #inspectorUrl: (() => string | undefined) | undefined;
  #debuggerStalls = 0;
  /** When the watchdog thread was last restarted (monotonic ms), within the hour. */
  #restartsAt: number[] = [];
  #restarts = 0;
  #spawned = 0;
  /** The current watchdog thread said it runs: one that dies before is not restarted. */
  #ready = false;
  /** The stall whose frames the watchdog thread is source-mapping, and the script whose map it decodes. */
  #mapping: Extract<WorkerMessage, { type: 'mapping' }> | undefined;
  readonly #deniedMaps: string[] = [];
  #profiler: MainThreadProfiler | undefined;
  #mode: WatchdogStatus['mode'] = 'stopped';
  #stacks = false;
  #stalls = 0;
  #lastBeat = 0;
  /** This watchdog's flag in the process's expectBlocking() state, while it runs. */
  #expectedFlag: ExpectedFlag | undefined;
  /** The scope current when the latest expectBlocking() call began. */
  #expectedScope: S | undefined;

  constructor(options: StallWatchdogOptions<S>) {
    checkWatchdogOptions(options);
    this.#options = options;
    this.#captureStacks = options.captureStacks ?? LOOP_LAG_DEFAULTS.captureStacks;
    // Times a stall within one interval. The worker wakes when the last beat could first turn
    // stale, so it sees every stall of at least the threshold while it lasts. Measured idle cost per
    // process of loopsight's loop timers (this beat, the worker, core's 10 ms delay sampler):
    // 1.2% of a core (bare Express 0.3%); 1.8% when the worker polled at every beat.
    this.#heartbeatMs = Math.max(1, Math.min(25, Math.floor(options.thresholdMs / 4)));
  }

  start(): void {
    if (this.#mode !== 'stopped') return;
    this.#beats = new Int32Array(new SharedArrayBuffer(BEAT_SLOTS * Int32Array.BYTES_PER_ELEMENT));
    this.#expectedFlag = {
      beats: this.#beats,
      slot: BEAT_EXPECTED,
      endSlot: BEAT_EXPECTED_END,
      // The request the declared blocking runs for: its stall takes no pause to read it.
      enter: () => {
        this.#expectedScope = this.#safe(() => this.#options.getScope(), undefined);
      },
    };
    const expected = expectedState();
    expected.flags.add(this.#expectedFlag);
    if (expected.depth > 0) Atomics.store(this.#beats, BEAT_EXPECTED, 1);
    this.#mode = 'starting';
    this.#inspectorUrl = this.#captureStacks ? inspectorUrl() : undefined;
    this.#lastBeat = monotonicMs();
    this.#beat();
    this.#timer = setInterval(() => this.#beat(), this.#heartbeatMs).unref();
    registry()[this.#key] = () => this.#readScope();
    process.once('exit', this.#onExit);
    const inUse = this.#debuggerOpen();
    const { profiler } = this.#options;
    if (profiler && this.#captureStacks && !inUse) {
      try {
        this.#profiler = new MainThreadProfiler(profiler.intervalMs ?? LOOP_LAG_DEFAULTS.profilerIntervalMs, RESTART_MS, (error) =>
          this.#options.onError('the sampling profiler could not be restarted', error),
        );
      } catch (error) {
        this.#options.onError('the sampling profiler could not start; stalls in native code get no stack', error);
      }
    }
    try {
      this.#spawn(this.#beats, inUse);
    } catch (error) {
      this.#degrade('the stall watchdog worker could not start', error);
    }
  }

  // An inspector session still connected when the process exits makes Node print "Waiting for
  // the debugger to disconnect..." (and wait, with --inspect): the profiler's is closed here, and
  // the worker, if it is handling a stall or holds a session, is told to let go and waited for, a
  // bounded time. Inspector messages are still served while this thread waits in Atomics.wait,
  // so a capture under way finishes; its report is delivered here, synchronously.
  readonly #onExit = () => {
    this.#closeProfiler();
    const beats = this.#beats;
    if (!beats) return;
    try {
      Atomics.store(beats, BEAT_EXITING, 1);
      // The stall, if one is under way, ends here.
      this.#beat();
      const port = this.#port;
      if (!port || Atomics.load(beats, BEAT_BUSY) === 0) return;
      port.postMessage({ type: 'exit' } satisfies MainMessage);
      Atomics.wait(beats, BEAT_BUSY, 1, EXIT_WAIT_MS);
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) this.#onMessage(m.message as WorkerMessage);
    } catch {
      // Exiting: nothing left to report to.
    }
  };

  /** Whether an inspector server is open (`--inspect`, `inspector.open()`, SIGUSR1): a debugger may be attached. */
  #debuggerOpen(): boolean {
    try {
      return this.#inspectorUrl?.() !== undefined;
    } catch {
      return false;
    }
  }

  #closeProfiler(): void {
    const profiler = this.#profiler;
    this.#profiler = undefined;
    try {
      profiler?.close();
    } catch {
      // Exiting or stopping: nothing left to report to.
    }
  }

  async stop(): Promise<void> {
    if (this.#mode === 'stopped') return;
    process.off('exit', this.#onExit);
    this.#closeProfiler();
    this.#mode = 'stopped';
    // Stand the worker down before the beats end: still watching, it would take the silence (or
    // the next block) for a stall and pause this thread while it is being terminated.
    if (this.#beats) Atomics.store(this.#beats, BEAT_EXITING, 1);
    clearInterval(this.#timer);
    this.#timer = undefined;
    delete registry()[this.#key];
    if (this.#expectedFlag) expectedState().flags.delete(this.#expectedFlag);
    this.#expectedFlag = undefined;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#beats = undefined;
    const port = this.#port;
    this.#port = undefined;
    if (worker && port && !(this.#options as InternalOptions).workerSource) {
      await Promise.all([
        // A worker thread paused through this watchdog's thread stays paused if that thread ends first.
        releaseThreads(port),
        // So does this thread, should a pause the watchdog asked for land after it is gone: it
        // closes its inspector session first.
        ask(port, { type: 'exit' } satisfies MainMessage, 'let-go', LET_GO_WAIT_MS),
      ]);
    }
    port?.close();
    if (worker) {
      worker.removeAllListeners();
      // An error from terminate must not surface as an unhandled 'error' event.
      worker.on('error', () => {});
      await worker.terminate();
    }
  }

  status(): WatchdogStatus {
    return {
      running: this.#mode !== 'stopped',
      mode: this.#mode,
      stacks: this.#stacks,
      stalls: this.#stalls,
      debuggerStalls: this.#debuggerStalls,
      restarts: this.#restarts,
    };
  }

  #beat(): void {
    const now = monotonicMs();
    if (this.#mode === 'main-thread') {
      const lateMs = now - this.#lastBeat - this.#heartbeatMs;
      if (lateMs >= this.#options.thresholdMs) {
        const expected = expectedState().endedAt > this.#lastBeat;
        this.#emit({
          durationMs: lateMs,
          at: Date.now() - (now - this.#lastBeat),
          stack: [],
          stackSource: 'none',
          inflight: 0,
          stackSkipped: expected ? 'expected' : 'unavailable',
          ...(expected ? { expected: true as const } : {}),
        });
      }
    }
    const gap = Math.round(now - this.#lastBeat);
    this.#lastBeat = now;
    const beats = this.#beats;
    if (!beats) return;
    if (gap > Atomics.load(beats, BEAT_GAP)) {
      Atomics.store(beats, BEAT_GAP_END, Math.floor(now) | 0);
      Atomics.store(beats, BEAT_GAP, gap);
    }
    Atomics.store(beats, BEAT_MS, Math.floor(now) | 0);
    // Read at every beat (tens of nanoseconds): a debugger opened later, by inspector.open() or
    // SIGUSR1, is seen by the next capture.
    Atomics.store(beats, BEAT_DEBUGGER, this.#debuggerOpen() ? 1 : 0);
    Atomics.add(beats, BEAT_SEQ, 1);
  }

  #spawn(beats: Int32Array, inUse: boolean): void {
    const o = this.#options;
    const internal = o as InternalOptions;
    const { port1, port2 } = new MessageChannel();
    const config: WorkerConfig = {
      heartbeat: beats.buffer as SharedArrayBuffer,
      port: port2,
      thresholdMs: o.thresholdMs,
      heartbeatMs: this.#heartbeatMs,
      pollMs: this.#heartbeatMs,
      captureStacks: this.#captureStacks,
      maxStacksPerMinute: o.maxStacksPerMinute ?? LOOP_LAG_DEFAULTS.maxStacksPerMinute,
      // A pause normally lands within a millisecond or two; much later means native code held it.
      latePauseMs: Math.max(20, o.thresholdMs / 4),
      profiler: this.#profiler !== undefined,
      debuggerMode: o.debuggerMode ?? 'on-stall',
      inspectorInUse: inUse,
      // Answers to a running or paused main thread come within a millisecond; half a second is
      // far beyond that, and short enough that a stuck command holds the main thread little.
      commandTimeoutMs: internal.commandTimeoutMs ?? 500,
      reachTimeoutMs: internal.reachTimeoutMs ?? 60_000,
      debuggerQuietMs: internal.debuggerQuietMs ?? 60_000,
      faults: (internal.faults ?? []).filter((f) => this.#spawned === 0 || f.everyWorker),
      deniedMaps: [...this.#deniedMaps],
      scopeExpression: `globalThis[Symbol.for(${JSON.stringify(REGISTRY.description)})]?.[${JSON.stringify(this.#key)}]?.()`,
      maxFrames: MAX_FRAMES,
      sourceMaps: SOURCE_MAP_LIMITS,
    };
    // The same thread watches the process's worker threads (threads-worker.ts).
    const worker = new Worker(internal.workerSource ?? workerSource() + threadsSource(), {
      eval: true,
      workerData: config,
      transferList: [port2],
      // The app's loaders and --inspect flags are not for the watchdog.
      execArgv: [],
      env: {},
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 4 },
    });
    this.#worker = worker;
    this.#port = port1;
    port1.on('message', (message: WorkerMessage) => this.#onMessage(message));
    // After the listener, which refs the port: the watchdog must not keep the process alive.
    port1.unref();
    this.#spawned++;
    this.#ready = false;
    worker.on('error', (error) => this.#lost(worker, 'the stall watchdog worker failed', error));
    worker.on('exit', (code) => this.#lost(worker, 'the stall watchdog worker exited', new Error(`exit code ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
  }

  #onMessage(message: WorkerMessage): void {
    if (this.#mode === 'stopped') return;
    switch (message.type) {
      case 'ready':
        this.#ready = true;
        if (this.#mode === 'starting') this.#mode = 'worker';
        this.#stacks = message.stacks;
        return;
      case 'degraded':
        this.#stacks = false;
        this.#options.onError('stall stacks are off', new Error(message.reason));
        return;
      case 'debugger':
        this.#options.onError('stall stacks are off while a debugger may be attached', new Error(message.reason));
        return;
      case 'error':
        this.#options.onError(message.what, new Error(message.message));
        return;
      case 'sourcemap':
        this.#options.onError('some stall frames are not source-mapped', new Error(`${message.url}: ${message.why}`));
        return;
      case 'mapping':
        this.#mapping = message;
        return;
      case 'stall':
        this.#mapping = undefined;
        this.#onStall(message);
    }
  }

  #onStall(message: Extract<WorkerMessage, { type: 'stall' }>): void {
    const report: WatchdogStallReport<S> = {
      durationMs: message.durationMs,
      at: message.at,
      stack: message.stack,
      stackSource: message.stackSource,
      inflight: 0,
    };
    let seen: { request?: S | null; inflight?: number; candidates?: S[] } | undefined;
    if (message.scope !== undefined) {
      try {
        seen = JSON.parse(message.scope);
      } catch {
        // A scope that does not serialize is left out, not guessed.
      }
    }
    const requestSource = seen?.request ? this.#requestSource(message) : undefined;
    if (seen?.request && requestSource) {
      report.request = seen.request;
      report.requestSource = requestSource;
    }
    report.inflight = seen?.inflight ?? this.#safe(() => this.#options.inflight(), 0);
    if (!report.request) {
      const candidates = seen?.candidates ?? this.#candidates();
      if (candidates.length > 0) report.candidates = candidates;
    }
    if (message.pauseDelayMs !== undefined) report.pauseDelayMs = message.pauseDelayMs;
    if (message.enteredAfter !== undefined) report.enteredAfter = message.enteredAfter;
    if (message.wantsProfile) this.#profile(report, message.window);
    if (message.stackSkipped !== undefined) report.stackSkipped = message.stackSkipped;
    if (message.expected) {
      report.expected = true;
      // A copy, as the paused thread's scope reader would give: the route as resolved by now.
      const scope = this.#safe(
        () => (this.#expectedScope === undefined ? undefined : (JSON.parse(JSON.stringify(this.#expectedScope)) as S)),
        undefined,
      );
      this.#expectedScope = undefined;
      if (scope !== undefined) {
        report.request = scope;
        report.requestSource = 'expectBlocking';
        delete report.candidates;
      }
    }
    if (message.debuggerAttached) {
      report.debuggerAttached = true;
      this.#debuggerStalls++;
    }
    this.#emit(report);
  }

  /**
   * Whether the paused scope is the blocker's. A late pause landed at the first interrupt check
   * after native code returned: whatever it ran next may be another request's (a microtask, the
   * next timer), but a frame below the top was on the stack before the pause was asked, so an
   * application frame there means the pause landed inside the synchronous call that blocked.
   */
  #requestSource(message: Extract<WorkerMessage, { type: 'stall' }>): RequestSource | undefined {
    if (message.stackSource === 'pause') return 'pause';
    if (message.stackSource !== 'late-pause') return undefined;
    const isApp = this.#options.frameFilter ?? isApplicationUrl;
    return message.stack.slice(message.enteredAfter ?? 1).some((frame) => this.#safe(() => isApp(frame.url), false))
      ? 'late-pause'
      : undefined;
  }

  /** The stack the profiler saw most during the stall, when the pause could not give it. */
  #profile(report: WatchdogStallReport<S>, [fromUs, toUs]: [number, number]): void {
    try {
      const profile = this.#profiler?.take();
      const found = profile && dominantStack(profile, fromUs, toUs, MAX_FRAMES);
      if (!found) return;
      report.gcShare = Math.round(found.gcShare * 100) / 100;
      if (found.stack.length > 0) {
        report.stack = mapStackFrames(found.stack);
        report.stackSource = 'profile';
      }
    } catch (error) {
      this.#options.onError('the stall profile could not be read', error);
    }
  }

  #emit(report: WatchdogStallReport<S>): void {
    this.#stalls++;
    report.durationMs = Math.round(report.durationMs * 10) / 10;
    if (report.inflight === 0) report.inflight = this.#safe(() => this.#options.inflight(), 0);
    try {
      this.#options.onStall(report);
    } catch (error) {
      this.#options.onError('a stall report could not be delivered', error);
    }
  }

  /** Runs on the paused main thread, inside whatever was blocking: keep it small and total. */
  #readScope(): string | undefined {
    return scopeJson(this.#options);
  }

  #candidates(): S[] {
    return copyCandidates(this.#options.candidates);
  }

  #safe<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch {
      return fallback;
    }
  }

  /**
   * The watchdog thread died (out of memory, a crash): it is started again, at most
   * MAX_RESTARTS_PER_HOUR times in an hour, then stalls are timed here; one that died before it
   * said it runs is not (it cannot start). A stall whose frames it was mapping is reported
   * without them, and that script's map is not decoded again.
   */
  #lost(worker: Worker, what: string, error: unknown): void {
    if (this.#worker !== worker || this.#mode === 'stopped' || this.#mode === 'main-thread') return;
    this.#worker = undefined;
    this.#port?.close();
    this.#port = undefined;
    worker.removeAllListeners();
    worker.on('error', () => {});
    worker.terminate().catch(() => {});
    const beats = this.#beats;
    const mapping = this.#mapping;
    this.#mapping = undefined;
    if (mapping) {
      if (this.#deniedMaps.length < MAX_DENIED_MAPS) this.#deniedMaps.push(mapping.url);
      this.#emit({
        durationMs: mapping.durationMs,
        at: mapping.at,
        stack: [],
        stackSource: 'none',
        inflight: 0,
        stackSkipped: 'unavailable',
      });
    } else if (beats && Atomics.load(beats, BEAT_BUSY) === 1) {
      // It died handling a stall, which has ended since (this thread runs): the longest gap
      // between beats since the thread began handling it is that stall's, the current one
      // included when no beat came yet.
      this.#beat();
      const gapMs = Atomics.load(beats, BEAT_GAP);
      const durationMs = gapMs - this.#heartbeatMs;
      if (durationMs >= this.#options.thresholdMs) {
        const endedAgo = ((Math.floor(monotonicMs()) | 0) - Atomics.load(beats, BEAT_GAP_END)) | 0;
        const at = Date.now() - endedAgo - gapMs;
        this.#emit({ durationMs, at, stack: [], stackSource: 'none', inflight: 0, stackSkipped: 'unavailable' });
      }
    }
    const now = monotonicMs();
    this.#restartsAt = this.#restartsAt.filter((at) => now - at < HOUR_MS);
    // One that never started would only fail again.
    if (!this.#ready) {
      this.#degrade(what, error);
      return;
    }
    if (!beats || this.#restartsAt.length >= MAX_RESTARTS_PER_HOUR) {
      this.#degrade(`${what}, after ${MAX_RESTARTS_PER_HOUR} restarts within an hour`, error);
      return;
    }
    this.#restartsAt.push(now);
    this.#restarts++;
    // What the dead thread left set: an exit would wait for it, the next stall would count its gap.
    Atomics.store(beats, BEAT_BUSY, 0);
    Atomics.store(beats, BEAT_GAP, 0);
    this.#mode = 'starting';
    this.#stacks = false;
    if (this.#restarts === 1) this.#options.onError(`${what}; it is restarted (at most ${MAX_RESTARTS_PER_HOUR} times an hour)`, error);
    try {
      this.#spawn(beats, this.#debuggerOpen());
    } catch (restartError) {
      this.#degrade('the stall watchdog worker could not be restarted', restartError);
    }
  }

  #degrade(what: string, error: unknown): void {
    if (this.#mode === 'stopped' || this.#mode === 'main-thread') return;
    this.#mode = 'main-thread';
    this.#stacks = false;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#port?.close();
    this.#port = undefined;
    worker?.terminate().catch(() => {});
    this.#lastBeat = monotonicMs();
    this.#options.onError(`${what}; stalls are now timed on the main thread, without stacks`, error);
  }
}

/**
 * Starts nothing until `start()`. Used by @loopsight/core's Monitor; usable alone:
 *
 * @example
 * const watchdog = createStallWatchdog({
 *   thresholdMs: 100, captureStacks: true,
 *   getScope: () => als.getStore(), inflight: () => 0,
 *   onStall: (r) => console.log(r.durationMs, r.stack[0]), onError: console.warn,
 * });
 * watchdog.start();
 */
export function createStallWatchdog<S extends object>(options: StallWatchdogOptions<S>): StallWatchdog {
  const watchdog = new Watchdog(options);
  // In a worker thread: watched by the process's watchdog thread, not one of its own (threads.ts).
  return isMainThread ? watchdog : new ThreadWatchdog(options);
}

/** For threads.ts: the scope readers by key, and a fresh key. */
export { nextKey as watchdogKey, registry as scopeReaders };
