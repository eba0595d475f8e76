import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { isMainThread, MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { LoopsightError } from '@loopsight/options';
import { BeatingThread } from './beating.js';
import { int32Ms, latePauseMsFor, MAX_FRAMES, monotonicMs, SLOT, since } from './heartbeat.js';
import { checkWatchdogOptions, LOOP_LAG_DEFAULTS } from './options.js';
import { dominantStack, MainThreadProfiler, RESTART_MS } from './profile.js';
import type { Fault, MainMessage, WorkerConfig, WorkerMessage } from './protocol.js';
import { scopeExpression } from './registry.js';
import { safe, timedReport } from './report.js';
import { mapStackFrames, SOURCE_MAP_LIMITS } from './sourcemap.js';
import type { StallWatchdog, StallWatchdogOptions, WatchdogStallReport } from './types.js';
import { ThreadWatchdog } from './worker-watchdog.js';

/** The inspector's `url()`, or nothing when Node was built without the inspector. */
function inspectorUrl(): (() => string | undefined) | undefined {
  try {
    // Loaded lazily: a Node built without the inspector throws on import, and must still run.
    return (createRequire(`${process.cwd()}/`)('node:inspector') as typeof import('node:inspector')).url;
  } catch {
    return undefined;
  }
}

/**
 * The watchdog thread's script (thread/entry.ts), built beside this module in both formats. From
 * the sources (this repository's tests), the package's build. Read when the thread starts, never
 * at load: a bundle that turned this ESM build into CommonJS has no import.meta, and must still
 * load (its `__filename` is the bundle's: the script is looked for beside it).
 */
function threadEntry(): URL {
  const here = typeof __filename === 'string' ? pathToFileURL(__filename) : new URL(import.meta.url);
  if (here.pathname.endsWith('.ts')) return new URL('../dist/watchdog-thread.js', here);
  return new URL(here.pathname.endsWith('.cjs') ? './watchdog-thread.cjs' : './watchdog-thread.js', here);
}

/**
 * Posts `message` to the watchdog thread and waits for its answer `reply`, at most `ms`: the
 * watchdog asks its thread to let go of what it paused before terminating it.
 */
function ask(port: MessagePort, message: MainMessage, reply: WorkerMessage['type'], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      port.off('message', onMessage);
      resolve();
    };
    const onMessage = (answer: { type?: string }) => {
      if (answer?.type === reply) done();
    };
    // Ref'd, and bounded: whoever awaits stop() keeps the process alive until the answer, at most `ms`.
    const timer = setTimeout(done, ms);
    port.on('message', onMessage);
    port.ref();
    port.postMessage(message);
  });
}

/** How long a process exit waits, at most, for the worker to let go of the main thread. */
const EXIT_WAIT_MS = 100;
/** How long stop() waits for the worker to close its inspector session (a capture under way gives up within this). */
const LET_GO_WAIT_MS = 1_000;
/** How long stop() waits for the watchdog thread to let go of the worker threads it paused. */
const RELEASE_WAIT_MS = 200;

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
class Watchdog<S extends object> extends BeatingThread<S> implements StallWatchdog {
  #worker: Worker | undefined;
  #port: MessagePort | undefined;
  #inspectorUrl: (() => string | undefined) | undefined;
  /** When the watchdog thread was last restarted (monotonic ms), within the hour. */
  #restartsAt: number[] = [];
  #spawned = 0;
  /** The current watchdog thread said it runs: one that dies before is not restarted. */
  #ready = false;
  /** The stall whose frames the watchdog thread is source-mapping, and the script whose map it decodes. */
  #mapping: Extract<WorkerMessage, { type: 'mapping' }> | undefined;
  readonly #deniedMaps: string[] = [];
  #profiler: MainThreadProfiler | undefined;
  #capture: Pick<WorkerConfig, 'capture' | 'nativeName'> = { capture: 'inspector', nativeName: '' };

  start(): void {
    if (this.mode !== 'stopped') return;
    this.mode = 'starting';
    // Before the first beat: loading the addon takes this thread 50-140 ms once (its detect-libc
    // and node-abi), which must not show as a stall of the app's.
    this.#capture = this.chooseCapture();
    this.#inspectorUrl = this.captureStacks ? inspectorUrl() : undefined;
    const beats = this.startBeating();
    process.once('exit', this.#onExit);
    const inUse = this.#debuggerOpen();
    const { profiler } = this.options;
    if (profiler && this.captureStacks && !inUse) {
      try {
        this.#profiler = new MainThreadProfiler(profiler.intervalMs ?? LOOP_LAG_DEFAULTS.profilerIntervalMs, RESTART_MS, (error) =>
          this.warn('the sampling profiler could not be restarted', 'LOOPSIGHT_CAPTURE_FAILED', 'profiler', error),
        );
      } catch (error) {
        this.warn(
          'the sampling profiler could not start; stalls in native code get no stack',
          'LOOPSIGHT_CAPTURE_FAILED',
          'profiler',
          error,
        );
      }
    }
    try {
      this.#spawn(beats, inUse);
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
    const beats = this.beats;
    if (!beats) return;
    try {
      Atomics.store(beats, SLOT.exiting, 1);
      // The stall, if one is under way, ends here.
      this.beat();
      const port = this.#port;
      if (!port || Atomics.load(beats, SLOT.busy) === 0) return;
      port.postMessage({ type: 'exit' } satisfies MainMessage);
      Atomics.wait(beats, SLOT.busy, 1, EXIT_WAIT_MS);
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
    if (this.mode === 'stopped') return;
    process.off('exit', this.#onExit);
    this.#closeProfiler();
    this.mode = 'stopped';
    // Stand the worker down before the beats end: still watching, it would take the silence (or
    // the next block) for a stall and pause this thread while it is being terminated.
    if (this.beats) Atomics.store(this.beats, SLOT.exiting, 1);
    this.stopBeating();
    const worker = this.#worker;
    this.#worker = undefined;
    const port = this.#port;
    this.#port = undefined;
    if (worker && port && !(this.options as InternalOptions).workerSource) {
      await Promise.all([
        // A worker thread paused through this watchdog's thread stays paused if that thread ends first.
        ask(port, { type: 'release-threads' }, 'threads-released', RELEASE_WAIT_MS),
        // So does this thread, should a pause the watchdog asked for land after it is gone: it
        // closes its inspector session first.
        ask(port, { type: 'exit' }, 'let-go', LET_GO_WAIT_MS),
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

  protected beat(): void {
    const now = monotonicMs();
    if (this.mode === 'main-thread') {
      const lateMs = now - this.lastBeat - this.beatEveryMs;
      if (lateMs >= this.options.thresholdMs) this.#emit(timedReport(lateMs, Date.now() - (now - this.lastBeat), this.lastBeat));
    }
    const gap = Math.round(now - this.lastBeat);
    this.lastBeat = now;
    const beats = this.beats;
    if (!beats) return;
    if (gap > Atomics.load(beats, SLOT.gap)) {
      Atomics.store(beats, SLOT.gapEnd, int32Ms(now));
      Atomics.store(beats, SLOT.gap, gap);
    }
    Atomics.store(beats, SLOT.ms, int32Ms(now));
    // Read at every beat (tens of nanoseconds): a debugger opened later, by inspector.open() or
    // SIGUSR1, is seen by the next capture.
    Atomics.store(beats, SLOT.debugger, this.#debuggerOpen() ? 1 : 0);
    Atomics.add(beats, SLOT.seq, 1);
  }

  #spawn(beats: Int32Array, inUse: boolean): void {
    const o = this.options;
    const internal = o as InternalOptions;
    const { port1, port2 } = new MessageChannel();
    const config: WorkerConfig = {
      heartbeat: beats.buffer as SharedArrayBuffer,
      port: port2,
      thresholdMs: o.thresholdMs,
      heartbeatMs: this.heartbeatMs,
      pollMs: this.heartbeatMs,
      captureStacks: this.captureStacks,
      maxStacksPerMinute: o.maxStacksPerMinute ?? LOOP_LAG_DEFAULTS.maxStacksPerMinute,
      latePauseMs: latePauseMsFor(o.thresholdMs),
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
      scopeExpression: scopeExpression(this.key),
      maxFrames: MAX_FRAMES,
      sourceMaps: SOURCE_MAP_LIMITS,
      ...this.#capture,
    };
    // The same thread watches the process's worker threads (thread/workers.ts).
    const worker = new Worker(internal.workerSource ?? threadEntry(), {
      eval: internal.workerSource !== undefined,
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
    worker.on('exit', (code) =>
      this.#lost(
        worker,
        'the stall watchdog worker exited',
        new LoopsightError('LOOPSIGHT_WATCHDOG_LOST', `exit code ${code}`, { site: 'exit' }),
      ),
    );
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
  }

  #onMessage(message: WorkerMessage): void {
    if (this.mode === 'stopped') return;
    switch (message.type) {
      case 'ready':
        this.#ready = true;
        if (this.mode === 'starting') this.mode = 'worker';
        this.stacks = message.stacks;
        return;
      case 'degraded':
        this.stacks = false;
        this.options.onError('stall stacks are off', new LoopsightError('LOOPSIGHT_STACKS_OFF', message.reason, { site: 'inspector' }));
        return;
      case 'capture':
        this.#capture = { ...this.#capture, capture: message.capture };
        this.captureChoice = { backend: message.capture, reason: message.reason };
        return;
      case 'debugger':
        this.options.onError(
          'stall stacks are off while a debugger may be attached',
          new LoopsightError('LOOPSIGHT_STACKS_OFF', message.reason, { site: 'debugger' }),
        );
        return;
      case 'error':
        this.threadProblem(message.problem, message.message);
        return;
      case 'sourcemap':
        this.options.onError(
          'some stall frames are not source-mapped',
          new LoopsightError('LOOPSIGHT_SOURCE_MAP', `${message.url}: ${message.why}`, { site: 'sourcemap' }),
        );
        return;
      case 'mapping':
        this.#mapping = message;
        return;
      case 'mapped':
        this.#mapping = undefined;
        return;
      case 'threads-released':
      case 'let-go':
        return;
      case 'stall':
        this.#mapping = undefined;
        this.#onStall(message);
    }
  }

  #onStall(message: Extract<WorkerMessage, { type: 'stall' }>): void {
    const { type, window, wantsProfile, ...captured } = message;
    const report = this.reportOf(captured);
    if (wantsProfile) this.#profile(report, window);
    this.#emit(report);
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
      this.warn('the stall profile could not be read', 'LOOPSIGHT_CAPTURE_FAILED', 'profile', error);
    }
  }

  #emit(report: WatchdogStallReport<S>): void {
    this.stalls++;
    report.durationMs = Math.round(report.durationMs * 10) / 10;
    if (report.inflight === 0) report.inflight = safe(() => this.options.inflight(), 0);
    try {
      this.options.onStall(report);
    } catch (error) {
      this.warn('a stall report could not be delivered', 'LOOPSIGHT_CALLBACK_THREW', 'onStall', error);
    }
  }

  /**
   * The watchdog thread died (out of memory, a crash): it is started again, at most
   * MAX_RESTARTS_PER_HOUR times in an hour, then stalls are timed here; one that died before it
   * said it runs is not (it cannot start). A stall whose frames it was mapping is reported
   * without them, and that script's map is not decoded again.
   */
  #lost(worker: Worker, what: string, error: unknown): void {
    if (this.#worker !== worker || this.mode === 'stopped' || this.mode === 'main-thread') return;
    this.#worker = undefined;
    this.#port?.close();
    this.#port = undefined;
    worker.removeAllListeners();
    worker.on('error', () => {});
    worker.terminate().catch(() => {});
    const beats = this.beats;
    const mapping = this.#mapping;
    this.#mapping = undefined;
    if (mapping) {
      if (this.#deniedMaps.length < MAX_DENIED_MAPS) this.#deniedMaps.push(mapping.url);
    }
    if (mapping?.thread === 0) {
      this.#emit({
        durationMs: mapping.durationMs,
        at: mapping.at,
        stack: [],
        stackSource: 'none',
        inflight: 0,
        stackSkipped: 'unavailable',
      });
    } else if (beats && (Atomics.load(beats, SLOT.busy) === 1 || !this.#ready)) {
      // It died handling a stall, which has ended since (this thread runs), or it never started
      // (a loaded machine can take a second to say so) and a stall came meanwhile: the longest
      // gap between beats since is that stall's, the current one included when no beat came yet.
      this.#gapStall(beats);
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
    this.restarts++;
    // What the dead thread left set: an exit would wait for it, the next stall would count its gap.
    Atomics.store(beats, SLOT.busy, 0);
    Atomics.store(beats, SLOT.gap, 0);
    this.mode = 'starting';
    this.stacks = false;
    if (this.restarts === 1)
      this.warn(`${what}; it is restarted (at most ${MAX_RESTARTS_PER_HOUR} times an hour)`, 'LOOPSIGHT_WATCHDOG_LOST', 'restart', error);
    try {
      this.#spawn(beats, this.#debuggerOpen());
    } catch (restartError) {
      this.#degrade('the stall watchdog worker could not be restarted', restartError);
    }
  }

  /** Reports the longest gap between beats the heartbeat holds, as a stall without a stack, if it is one. */
  #gapStall(beats: Int32Array): void {
    this.beat();
    const gapMs = Atomics.load(beats, SLOT.gap);
    const durationMs = gapMs - this.beatEveryMs;
    if (durationMs < this.options.thresholdMs) return;
    const endedAgo = since(int32Ms(monotonicMs()), Atomics.load(beats, SLOT.gapEnd));
    const at = Date.now() - endedAgo - gapMs;
    this.#emit({ durationMs, at, stack: [], stackSource: 'none', inflight: 0, stackSkipped: 'unavailable' });
  }

  #degrade(what: string, error: unknown): void {
    if (this.mode === 'stopped' || this.mode === 'main-thread') return;
    this.mode = 'main-thread';
    this.stacks = false;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#port?.close();
    this.#port = undefined;
    worker?.terminate().catch(() => {});
    this.lastBeat = monotonicMs();
    this.warn(`${what}; stalls are now timed on the main thread, without stacks`, 'LOOPSIGHT_WATCHDOG_LOST', 'main-thread', error);
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
  checkWatchdogOptions(options);
  // In a worker thread: watched by the process's watchdog thread, not one of its own (worker-watchdog.ts).
  return isMainThread ? new Watchdog(options) : new ThreadWatchdog(options);
}
