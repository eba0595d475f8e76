import { isMainThread, threadId } from 'node:worker_threads';
import { type LoopsightCode, LoopsightError, warning } from '@loopsight/options';
import { createHeartbeat, heartbeatMsFor, monotonicMs, SLOT } from './heartbeat.js';
import { type CaptureChoice, chooseCapture, nativeName } from './native.js';
import { LOOP_LAG_DEFAULTS } from './options.js';
import { type Fault, PROBLEMS, type Problem, type StallCapture, type WatchConfig } from './protocol.js';
import { readerKey, scopeReaders } from './registry.js';
import { DeclaredBlocking, reportOf } from './report.js';
import { copyCandidates, scopeJson } from './scope.js';
import { followTicks } from './ticks.js';
import type { StallWatchdogOptions, WatchdogStallReport, WatchdogStatus } from './types.js';

/**
 * What the main thread's watchdog (watchdog.ts) and a worker thread's (worker-watchdog.ts) share: the
 * heartbeat the thread writes, the scope reader the watchdog thread evaluates on it when paused,
 * its part in expectBlocking(), and the report of a stall the watchdog thread captured.
 */
export abstract class BeatingThread<S extends object> {
  protected readonly options: StallWatchdogOptions<S>;
  protected readonly key = readerKey();
  protected readonly heartbeatMs: number;
  protected readonly captureStacks: boolean;
  protected beats: Int32Array | undefined;
  protected mode: WatchdogStatus['mode'] = 'stopped';
  protected stacks = false;
  protected stalls = 0;
  protected debuggerStalls = 0;
  /** Times the watchdog thread was started again: the main thread counts them; a worker thread has none of its own. */
  protected restarts = 0;
  /** Monotonic ms of the latest beat. */
  protected lastBeat = 0;
  /** The interval of the timer the thread beats on now (its own, or a delay recorder's). */
  protected beatEveryMs: number;
  /** The backend chosen at start (undefined while stopped). */
  protected captureChoice: CaptureChoice | undefined;
  #warnedCapture = false;
  #unfollow: (() => void) | undefined;
  #declared: DeclaredBlocking<S> | undefined;

  constructor(options: StallWatchdogOptions<S>) {
    this.options = options;
    this.captureStacks = options.captureStacks ?? LOOP_LAG_DEFAULTS.captureStacks;
    // Times a stall within one interval. The watchdog thread wakes when the last beat could first
    // turn stale, so it sees every stall of at least the threshold while it lasts. Measured idle
    // cost per process of loopsight's loop timers (this beat, the watchdog thread, core's 10 ms
    // delay sampler): 1.2% of a core (bare Express 0.3%); 1.8% when the thread polled at every beat.
    this.heartbeatMs = heartbeatMsFor(options.thresholdMs);
    this.beatEveryMs = this.heartbeatMs;
  }

  status(): WatchdogStatus {
    return {
      running: this.mode !== 'stopped',
      mode: this.mode,
      stacks: this.stacks,
      stalls: this.stalls,
      debuggerStalls: this.debuggerStalls,
      restarts: this.restarts,
      ...(this.captureChoice && this.mode !== 'stopped'
        ? { capture: { backend: this.captureChoice.backend, reason: this.captureChoice.reason } }
        : {}),
    };
  }

  /**
   * Picks this thread's capture backend (and registers it with the native addon if that is the
   * one): on the watched thread, at start. What the user asked for and cannot have is said once.
   */
  protected chooseCapture(): Pick<WatchConfig, 'capture' | 'nativeName'> {
    const faults = (this.options as { faults?: Fault[] }).faults ?? [];
    const fail = faults.some((f) => f.step === 'native-load' && f.kind === 'fail');
    const wanted = this.options.capture ?? 'auto';
    const choice: CaptureChoice = !this.captureStacks
      ? { backend: 'inspector', reason: 'captureStacks: false' }
      : isMainThread
        ? chooseCapture(wanted, fail)
        : // The addon crashed the process (SIGSEGV) when a worker registered with it was terminated
          // or exited while a capture was under way (termination.test.ts, Node 24): worker
          // threads stay with the inspector, and are never registered with the addon.
          { backend: 'inspector', reason: `${wanted}: worker threads are watched through the inspector` };
    this.captureChoice = choice;
    if (choice.warning && !this.#warnedCapture) {
      this.#warnedCapture = true;
      this.options.onError(
        'the stall capture backend',
        new LoopsightError('LOOPSIGHT_CAPTURE_BACKEND', choice.warning, { site: 'capture' }),
      );
    }
    return { capture: choice.backend, nativeName: nativeName(threadId) };
  }

  /** Starts the heartbeat: the beats, the scope reader and the expectBlocking() flag. */
  protected startBeating(): Int32Array {
    const beats = createHeartbeat();
    Atomics.store(beats, SLOT.every, this.beatEveryMs);
    this.beats = beats;
    this.#declared = new DeclaredBlocking(beats, () => this.options.getScope());
    scopeReaders()[this.key] = () => scopeJson(this.options);
    this.lastBeat = monotonicMs();
    this.beat();
    this.#unfollow = followTicks(this.heartbeatMs, (everyMs) => {
      if (everyMs !== this.beatEveryMs && this.beats) Atomics.store(this.beats, SLOT.every, everyMs);
      this.beatEveryMs = everyMs;
      this.beat();
    });
    return beats;
  }

  protected stopBeating(): void {
    this.captureChoice = undefined;
    this.#unfollow?.();
    this.#unfollow = undefined;
    delete scopeReaders()[this.key];
    this.#declared?.close();
    this.#declared = undefined;
    this.beats = undefined;
  }

  protected abstract beat(): void;

  /** The report of a stall the watchdog thread captured on this thread. */
  protected reportOf(captured: StallCapture): WatchdogStallReport<S> {
    const report = reportOf<S>(captured, {
      options: this.options,
      candidates: () => this.candidates(),
      declaredScope: () => this.#declared?.take(),
    });
    if (report.debuggerAttached) this.debuggerStalls++;
    return report;
  }

  /** Tells `onError` of a problem, with its code and site (said once by the caller for each). */
  protected warn(what: string, code: LoopsightCode, site: string, error: unknown): void {
    this.options.onError(what, warning(code, error, { site }));
  }

  /** A problem the watchdog thread reported: its text crossed threads, its code comes from PROBLEMS. */
  protected threadProblem(problem: Problem, message: string): void {
    const known = PROBLEMS[problem];
    if (!known) return;
    this.options.onError(known.what, new LoopsightError(known.code, message, { site: problem }));
  }

  protected candidates(): S[] {
    return copyCandidates(this.options.candidates);
  }
}
