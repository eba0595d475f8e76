/**
 * Defaults of loop-lag's options: the stall watchdog's and the delay recorder's. @loopsight/core's
 * `loopLag` options default to the same values (`stallThresholdMs` is the watchdog's `thresholdMs`).
 */
export const LOOP_LAG_DEFAULTS = Object.freeze({
  /** Interval of the delay recorder's timer, ms; also the resolution the overload guard reads at. */
  resolutionMs: 10,
  thresholdMs: 100,
  captureStacks: true,
  maxStacksPerMinute: 10,
  /** Sampling interval of the profiler when it is turned on without one, ms. */
  profilerIntervalMs: 10,
});

/** The ranges loop-lag's options are checked against (inclusive); core checks `loopLag` against the same. */
export const LOOP_LAG_LIMITS = Object.freeze({
  resolutionMs: Object.freeze({ min: 1, max: 1_000 }),
  /** Below 10 ms the watchdog's heartbeat (every thresholdMs / 4) would itself load the loop it watches. */
  thresholdMs: Object.freeze({ min: 10, max: 3_600_000 }),
  maxStacksPerMinute: Object.freeze({ min: 1, max: 6_000 }),
  profilerIntervalMs: Object.freeze({ min: 1, max: 1_000 }),
});
