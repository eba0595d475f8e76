import {
  boolean,
  custom,
  func,
  invalidOption,
  isPlainObject,
  number,
  oneOf,
  positive,
  resolveShape,
  type Shape,
  string,
} from '@loopsight/options';

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

const { thresholdMs, maxStacksPerMinute, profilerIntervalMs, resolutionMs } = LOOP_LAG_LIMITS;
const callback = func();

/** createStallWatchdog()'s options; the last five are test seams, not public API. */
const WATCHDOG_SHAPE = {
  thresholdMs: number({
    min: thresholdMs.min,
    max: thresholdMs.max,
    accepted: `a number from ${thresholdMs.min} to ${thresholdMs.max} ms`,
  }),
  captureStacks: boolean(),
  maxStacksPerMinute: number({ integer: true, ...maxStacksPerMinute }),
  profiler: custom('false or { intervalMs }', (value, path) =>
    value === undefined || value === false
      ? value
      : resolveShape({ intervalMs: number({ integer: true, ...profilerIntervalMs }) }, value, path, 'false or { intervalMs }'),
  ),
  debuggerMode: oneOf(['always', 'on-stall']),
  capture: oneOf(['auto', 'native', 'inspector']),
  getScope: func(undefined, 'a function () => scope'),
  frameFilter: callback,
  inflight: func(undefined, 'a function () => number'),
  candidates: callback,
  onStall: callback,
  onError: callback,
  workerSource: string(),
  faults: custom('an array', (value, path) =>
    value === undefined || Array.isArray(value) ? value : invalidOption(path, 'an array', value),
  ),
  commandTimeoutMs: positive(),
  reachTimeoutMs: positive(),
  debuggerQuietMs: number({ min: 0 }),
} satisfies Shape;

/** Refuses createStallWatchdog()'s bad options (and unknown ones) with a coded TypeError naming them. */
export function checkWatchdogOptions(options: unknown): void {
  const resolved = resolveShape(WATCHDOG_SHAPE, options);
  // Required: checked after the shape, so an unknown key is named before a missing one.
  if (resolved.thresholdMs === undefined) invalidOption('thresholdMs', WATCHDOG_SHAPE.thresholdMs.accepted, undefined);
  for (const key of ['getScope', 'inflight', 'onStall', 'onError'] as const) {
    if (resolved[key] === undefined) invalidOption(key, 'a function', undefined);
  }
}

/** createLoopDelayRecorder()'s interval: an integer from 1 to 1000 ms. */
export const RESOLUTION_MS = number({
  integer: true,
  ...resolutionMs,
  accepted: `an integer from ${resolutionMs.min} to ${resolutionMs.max} (ms)`,
});

const GUARD_SHAPE = {
  maxEventLoopDelayMs: positive({ max: 60_000 }),
  maxEventLoopUtilization: number({ above: 0, max: 1, accepted: 'a number in (0, 1]' }),
  maxHeapUsedBytes: positive({ integer: true }),
  sampleIntervalMs: positive({ integer: true, max: 60_000 }),
  recorder: custom('a recorder from createLoopDelayRecorder()', (value, path) =>
    value === undefined || (isPlainObject(value) && typeof value.open === 'function')
      ? value
      : invalidOption(path, 'a recorder from createLoopDelayRecorder()', value),
  ),
  onChange: func(undefined, 'a function (state) => void'),
} satisfies Shape;

const GUARD_LIMITS = ['maxEventLoopDelayMs', 'maxEventLoopUtilization', 'maxHeapUsedBytes'] as const;

/** createOverloadGuard()'s options, checked: at least one limit, a sample interval, nothing unknown. */
export function checkGuardOptions(options: unknown): void {
  const resolved = resolveShape(GUARD_SHAPE, options);
  if (GUARD_LIMITS.every((key) => resolved[key] === undefined)) {
    invalidOption('', `an object that sets at least one of ${GUARD_LIMITS.join(', ')}`, options);
  }
  if (resolved.sampleIntervalMs === undefined) invalidOption('sampleIntervalMs', GUARD_SHAPE.sampleIntervalMs.accepted, undefined);
}
