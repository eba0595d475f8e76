import type { LoopDelayRecorder } from './delay.js';

/** A stack frame: 1-based line and column, as in Error stacks. */
export interface WatchdogStackFrame {
  functionName: string;
  /** `file://` URL or path of the script; `node:` for Node's own modules; empty when unknown. */
  url: string;
  line: number;
  column: number;
  /** Where the frame is in the code that ran, when `url`, `line` and `column` come from a source map. */
  generated?: { url: string; line: number; column: number };
}

/**
 * Where a stall's stack came from:
 * - `pause`: the loop was paused while blocked; the top frames are the blocker.
 * - `late-pause`: the pause landed later than asked (`pauseDelayMs`), after native code that
 *   checks no interrupts (JSON.parse of a large body, say) had returned; the frames show where
 *   JavaScript went on, not what blocked.
 * - `profile`: the sampling profiler's most frequent stack inside the stall.
 * - `none`: no stack (captures off, rate-limited, or no inspector).
 */
export type StackSource = 'pause' | 'late-pause' | 'profile' | 'none';

/**
 * How a stall's `request` was established:
 * - `pause`: the scope that was current where the pause landed, while the loop was still blocked.
 * - `late-pause`: the pause landed late, after native code returned, but an application frame
 *   below its top frame shows it landed inside the same synchronous call: every frame below the
 *   top was already on the stack when the loop was first seen blocked (a function entered later
 *   would have taken the pause at its own entry), so the scope is that call's.
 * - `expectBlocking`: declared blocking, not paused: the scope current when `expectBlocking()` began.
 */
export type RequestSource = 'pause' | 'late-pause' | 'expectBlocking';

/** Why a stall has no stack. */
export type StackSkipped = 'rate-limited' | 'disabled' | 'unavailable' | 'expected';

/**
 * A loop blocked for at least the threshold, with the request `S` it ran for. @loopsight/core's
 * `StallReport` is this with `S` its RequestScope, `type: 'stall'` and a `culprit`. Every field is
 * explained in docs/loop-lag.md.
 */
export interface WatchdogStallReport<S> {
  /** How late the loop ran, ms: the gap between two heartbeats minus their interval. */
  durationMs: number;
  /** Epoch ms when the stall began (the last heartbeat before it). */
  at: number;
  /** Top frame first, at most 32 frames. */
  stack: WatchdogStackFrame[];
  stackSource: StackSource;
  /**
   * The request or job that was running, read on the paused frame; absent when it could not be
   * established (no pause, or a late pause with no application frame below its top): never guessed.
   */
  request?: S;
  /** How `request` was established; present with it. */
  requestSource?: RequestSource;
  /** Requests in flight during the stall. */
  inflight: number;
  /** When `request` is absent: the requests in flight during the stall (at most 10). */
  candidates?: S[];
  /** How long after it was asked for the pause landed, ms. */
  pauseDelayMs?: number;
  /**
   * A late pause: how many frames at the top of `stack` were entered after the pause was asked (0
   * or 1; absent when it could not be told, then taken as 1). They may have run after the
   * blocking work; every frame below them was on the stack before, inside the call that blocked.
   */
  enteredAfter?: number;
  /** With the profiler on: share of the stall spent in garbage collection, 0..1. */
  gcShare?: number;
  /** Why there is no stack. */
  stackSkipped?: StackSkipped;
  /**
   * Set when the stack was skipped because a debugger may be attached (an inspector server is
   * open, or a debugger paused the main thread within the last minute); `stackSkipped` is then
   * `'unavailable'`. The watchdog never pauses or resumes a thread a debugger may be stopping.
   */
  debuggerAttached?: true;
  /**
   * The stall was declared: the main thread ran inside `expectBlocking()` (or, in core, the
   * request matched `loopLag.expected`). Counted and timed, with no stack (`stackSkipped:
   * 'expected'`) and no report line.
   */
  expected?: true;
  /**
   * Set when the stall was a worker thread's: its `threadId`, and its name where Node tells it to
   * the worker (`worker_threads.threadName`: Node 22.20+ and 24.6+, not 20), else empty.
   */
  thread?: { id: number; name: string };
  /** Which backend took the stack: `native` (the addon, no debugger) or `inspector` (a debugger session). */
  capture?: CaptureBackend;
  /**
   * Native backend: how many of the samples taken while the thread stayed blocked (every
   * 25 ms, at most 40) agreed with the stack reported (same top application frame).
   */
  samples?: number;
}

/** The backend that takes a stall's stack. */
export type CaptureBackend = 'native' | 'inspector';

/** The main thread's sampling profiler, for stalls spent inside native code. */
export interface ProfilerOptions {
  /** Sampling interval, ms: an integer from 1 to 1000. Default 10. */
  intervalMs?: number;
}

export interface StallWatchdogOptions<S extends object> {
  /** A loop late by at least this much is a stall, ms: from 10 to 3,600,000 (a TypeError otherwise). */
  thresholdMs: number;
  /** Pause the loop to read the stack and the scope; `false`: stalls are timed and counted only. Default true. */
  captureStacks?: boolean;
  /** Stack captures allowed per minute (1 to 6000); later stalls are counted and timed without a stack. Default 10. */
  maxStacksPerMinute?: number;
  /**
   * A sampling profiler on the main thread, so that stalls spent inside native code (JSON.parse of
   * a large body) still get the stack that called it. Default: off.
   */
  profiler?: false | ProfilerOptions;
  /**
   * `on-stall` (default) enables the debugger only while a stall is captured; `always` keeps it
   * enabled (faster first pause, at a cost measured in docs/loop-lag.md).
   */
  debuggerMode?: 'always' | 'on-stall';
  /**
   * How stacks are taken: `native` asks the blocked thread for its stack through a native addon
   * (@sentry-internal/node-native-stacktrace, an optional dependency), with no debugger session,
   * and cannot name the request; `inspector` pauses it through a debugger session and reads the
   * request on the paused frame; `auto` (default) is the inspector (docs/loop-lag.md says why).
   */
  capture?: 'auto' | 'native' | 'inspector';
  /** The request scope that is current now: read on the paused frame. */
  getScope: () => S | undefined;
  /**
   * Whether a frame's script URL is the application's own: a late pause names its request only
   * when such a frame is below its top frame. Default: not empty, not `node:`, not in node_modules.
   */
  frameFilter?: (url: string) => boolean;
  /** Number of requests in flight. */
  inflight: () => number;
  /** Some in-flight requests (at most 10 are used), for stalls whose request is unknown. */
  candidates?: () => Iterable<S>;
  onStall: (report: WatchdogStallReport<S>) => void;
  /** A contained failure or a degradation (no inspector, worker gone): said once by the caller. */
  onError: (what: string, error: unknown) => void;
}

export interface WatchdogStatus {
  running: boolean;
  /** `worker`: stalls with stacks (when allowed); `main-thread`: timed on the main thread, no stacks. */
  mode: 'stopped' | 'starting' | 'worker' | 'main-thread';
  stacks: boolean;
  stalls: number;
  /** Stalls timed without a stack because a debugger may be attached (`debuggerAttached`). */
  debuggerStalls: number;
  /** Times the watchdog thread died and was started again (at most 3 an hour; then `main-thread`). */
  restarts: number;
  /** The backend that takes this thread's stacks and why (how `capture: 'auto'` chose); absent while stopped. */
  capture?: { backend: CaptureBackend; reason: string };
}

export interface StallWatchdog {
  start(): void;
  stop(): Promise<void>;
  status(): WatchdogStatus;
}

/** Why requests are shed; also the `reason` label of `loopsight_requests_shed_total`. */
export type ShedReason = 'event_loop_delay' | 'event_loop_utilization' | 'heap_used';

export interface GuardOptions {
  /** Overloaded when the loop delay over a sample interval (p90 or time-weighted mean, the higher) exceeds this, ms. */
  maxEventLoopDelayMs?: number;
  /** Overloaded when the loop's utilization over a sample interval exceeds this, 0..1. */
  maxEventLoopUtilization?: number;
  /** Overloaded when V8's used heap after the last major GC exceeds this many bytes (the reading expires after 20 samples). */
  maxHeapUsedBytes?: number;
  /** How often the signals are sampled, ms. */
  sampleIntervalMs: number;
  /**
   * The loop delay recorder to read, shared with whatever else reads the delay at its resolution
   * (core's sampler). Default: one of its own at LOOP_LAG_DEFAULTS.resolutionMs (10 ms), the
   * resolution the delay limit was tuned at.
   */
  recorder?: LoopDelayRecorder;
  /** Called when the state changes (ok → overloaded and back). */
  onChange?: (state: GuardState) => void;
}

export interface GuardState {
  status: 'ok' | 'overloaded';
  /** The signals over their limit at the sample that entered (or kept) the overloaded state. */
  reasons: ShedReason[];
  /** The last sample. */
  signals: { eventLoopDelayMs: number; eventLoopUtilization: number; heapUsedBytes: number };
}

export interface OverloadGuard {
  start(): void;
  stop(): void;
  /** The first reason to shed this request, or undefined; read it once per request (it lets probes through). */
  readonly overloaded: ShedReason | undefined;
  state(): GuardState;
}
