/** A stack frame as the tracker reports it (same shape as loopsight's `StackFrame`). */
export interface TrackerStackFrame {
  functionName: string;
  /** File path (CommonJS), `file://` URL (ESM) or `node:` id. */
  url: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
}

/**
 * - `floating`: created in a request, never observed (no await, then/catch/finally, combinator or
 *   resolution by another promise) by the time the request ended or, if it was still pending then,
 *   by the time it settled.
 * - `leaked`: still pending `leakAfterMs` after its request ended.
 * - `unhandled`: rejected and nobody handled it (the promise Node calls unhandled), with the request that created it.
 */
export type PromiseKind = 'floating' | 'leaked' | 'unhandled';

/**
 * A floating, leaked or unhandled promise, with the scope `S` that created it. Fields are explained
 * in docs/promises.md; `@loopsight/core`'s `PromiseReport` is this report with its `RequestScope`
 * and the `culprit` frame the monitor adds.
 */
export interface TrackedPromiseReport<S> {
  type: 'promise';
  kind: PromiseKind;
  /** Where the promise was created, your frames only by default (see `frameFilter`). Empty when it was not tracked. */
  stack: TrackerStackFrame[];
  /** The scope (request or job) that was current when the promise was created. */
  request?: S;
  /** Milliseconds from the promise's creation to this report; 0 when the creation was not seen. */
  ageMs: number;
  /** `unhandled` only: the rejection reason, one line, at most 200 characters. */
  reason?: string;
  /** Reports of the same creation site and kind left out since the previous one (one per site and kind per minute). */
  suppressed: number;
}

/** How a running tracker samples: `full` tracks all the time, `sampled` in windows. */
export type TrackerMode = 'sampled' | 'full';

/**
 * What to track and how: the `promises` options of `createMonitor()` and of every adapter, and
 * the tuning half of `createPromiseTracker()`'s options. Validated once, at construction: a bad
 * value throws a `TypeError` naming the option and what it accepts.
 *
 * @example
 * createMonitor({ promises: { mode: 'full', leakAfterMs: 2_000 } });
 */
export interface PromiseOptions {
  /**
   * `full`: hooks on from start() to stop() (development, CI). `sampled`: tracking windows of
   * `sampleWindowMs` every `sampleIntervalMs`. `off` (the monitor only): nothing is installed.
   * Default 'sampled'.
   */
  mode?: 'off' | TrackerMode;
  /** A promise still pending this long after its request ended is leaked, ms, at most 1 h. Default 5000. */
  leakAfterMs?: number;
  /** Sampled mode: length of one tracking window, ms, at most 1 h. Default 1000. */
  sampleWindowMs?: number;
  /** Sampled mode: a window opens this often, ms, more than `sampleWindowMs` and at most 24 h. Default 30000. */
  sampleIntervalMs?: number;
  /** Hard cap of promises tracked at once (integer); beyond it new ones are counted in `dropped`. Default 10000. */
  maxTracked?: number;
  /** Frames captured per tracked promise, an integer from 1 to 200. Default 10. */
  stackDepth?: number;
  /**
   * Which frames are yours, by URL: the only frames reports show (when none is, the raw frames are
   * shown), and the frames that decide who dropped a promise. Default `isUserFrame`: everything but
   * `node:` internals and `node_modules`.
   */
  frameFilter?: (url: string) => boolean;
}

/** `PromiseOptions` with the defaults merged in and every value checked. Frozen. */
export interface ResolvedPromiseOptions {
  readonly mode: 'off' | TrackerMode;
  readonly leakAfterMs: number;
  readonly sampleWindowMs: number;
  readonly sampleIntervalMs: number;
  readonly maxTracked: number;
  readonly stackDepth: number;
  readonly frameFilter: (url: string) => boolean;
}

/** What `createPromiseTracker()` takes: the `PromiseOptions` (but `off`) and the callbacks that connect it to your scopes and logs. */
export interface PromiseTrackerOptions<S extends object> extends Omit<PromiseOptions, 'mode'> {
  /** The request scope that is current now (core passes its AsyncLocalStorage getter). */
  getScope: () => S | undefined;
  onReport: (report: TrackedPromiseReport<S>) => void;
  /** A contained failure inside the tracker. Default: ignored (the tracker never throws into your code). */
  onError?: (what: string, error: unknown) => void;
  /** `full` (development, CI) or `sampled`; not `off`: a tracker that tracks nothing is one not created. Default 'sampled'. */
  mode?: TrackerMode;
  /**
   * Reports are limited to one per creation site and kind a minute; with this, one per site and
   * kind a minute within each partition (core passes the monitor a scope belongs to, so that each
   * app hears of its own). Called only when a report is about to be made.
   */
  partition?: (scope: S | undefined) => string | number;
}

export interface PromiseKindCounts {
  floating: number;
  leaked: number;
  unhandled: number;
}

/** The tracker's counters; the monitor exposes them as `counters().promises`. */
export interface PromiseTrackerStats {
  mode: TrackerMode;
  /** Promises tracked now. */
  tracked: number;
  /** The hard cap (`maxTracked`). */
  maxTracked: number;
  /** Promises not tracked because the cap was reached. */
  dropped: number;
  /** Whether new promises are being tracked now (always in full mode while started; in windows when sampled). */
  sampling: boolean;
  /** Tracking windows opened since start (1 in full mode). */
  windows: number;
  /** Reports emitted, by kind. */
  reported: PromiseKindCounts;
  /** Reports left out by the once-per-site-per-minute rule, by kind. */
  suppressed: PromiseKindCounts;
}

export interface PromiseTracker<S extends object> {
  /** Installs the hooks (or the sampling timer). Idempotent. */
  start(): void;
  /** Removes every hook, listener and timer start() installed and forgets tracked promises. Idempotent. */
  stop(): void;
  /** Core calls this when a request scope ends (response closed, job settled). */
  scopeEnded(scope: S): void;
  stats(): PromiseTrackerStats;
}
