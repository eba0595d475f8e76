import { func, invalidOption, oneOf, positive, resolveShape, type Shape } from '@loopsight/options';
import { isUserFrame } from './stack.js';
import type { PromiseOptions, PromiseTrackerOptions, ResolvedPromiseOptions, TrackerMode } from './types.js';

type Mode = ResolvedPromiseOptions['mode'];

const MODES: readonly Mode[] = Object.freeze(['off', 'sampled', 'full']);
// `off` is the monitor's way of not creating a tracker: a tracker itself runs in one of these.
const TRACKER_MODES: readonly TrackerMode[] = Object.freeze(['sampled', 'full']);

const DEFAULTS: ResolvedPromiseOptions = Object.freeze({
  mode: 'sampled',
  leakAfterMs: 5_000,
  sampleWindowMs: 1_000,
  sampleIntervalMs: 30_000,
  maxTracked: 10_000,
  stackDepth: 10,
  frameFilter: isUserFrame,
});

/** The settings' rules; `mode` is added per caller (the monitor accepts `off`, a tracker does not). */
const SETTINGS = {
  leakAfterMs: positive({ max: 3_600_000, default: DEFAULTS.leakAfterMs }),
  sampleWindowMs: positive({ max: 3_600_000, default: DEFAULTS.sampleWindowMs }),
  sampleIntervalMs: positive({ max: 86_400_000, default: DEFAULTS.sampleIntervalMs }),
  maxTracked: positive({ integer: true, max: 10_000_000, default: DEFAULTS.maxTracked }),
  stackDepth: positive({ integer: true, max: 200, default: DEFAULTS.stackDepth }),
  frameFilter: func<ResolvedPromiseOptions['frameFilter'], ResolvedPromiseOptions['frameFilter']>(DEFAULTS.frameFilter),
} satisfies Shape;

const MONITOR_SHAPE = { mode: oneOf(MODES, DEFAULTS.mode), ...SETTINGS } satisfies Shape;
const callback = func<never>();
const TRACKER_SHAPE = {
  mode: oneOf(TRACKER_MODES, 'sampled'),
  ...SETTINGS,
  getScope: callback,
  onReport: callback,
  onError: callback,
  partition: callback,
} satisfies Shape;

/**
 * Merges the defaults into `PromiseOptions` and validates every value, once: a bad one throws a
 * `TypeError` that names it and what it accepts (`loopsight: options.promises.leakAfterMs must be
 * a positive number up to 3600000 (got -1)`), as does a key that is not an option. `prefix` is
 * where the options sit in the caller's own (`'promises.'` for `createMonitor`). `undefined` gives
 * the defaults. The result is frozen.
 *
 * `createMonitor({ promises })` validates with it; `createPromiseTracker()` validates the same way.
 */
export function resolvePromiseOptions(options: PromiseOptions | undefined, prefix = ''): ResolvedPromiseOptions {
  return resolve(options, prefix);
}

/** `createPromiseTracker()`'s options, resolved: the settings above and the tracker's own callbacks. */
export type ResolvedTrackerOptions<S extends object> = Omit<ResolvedPromiseOptions, 'mode'> &
  Pick<PromiseTrackerOptions<S>, 'getScope' | 'onReport' | 'onError' | 'partition'> & { readonly mode: TrackerMode };

/** `createPromiseTracker()`'s: the same settings but `off`, and its callbacks are options too. */
export function resolveTrackerOptions<S extends object>(options: PromiseTrackerOptions<S>): ResolvedTrackerOptions<S> {
  const resolved = resolveShape(TRACKER_SHAPE, options === undefined ? null : options);
  for (const key of ['getScope', 'onReport'] as const) if (resolved[key] === undefined) invalidOption(key, 'a function', undefined);
  checkWindows(resolved, '');
  const { getScope, onReport, onError, partition } = options;
  return {
    ...resolved,
    getScope,
    onReport,
    ...(onError && { onError }),
    ...(partition && { partition }),
  } as ResolvedTrackerOptions<S>;
}

function checkWindows(resolved: { sampleWindowMs: number; sampleIntervalMs: number }, prefix: string): void {
  if (resolved.sampleIntervalMs <= resolved.sampleWindowMs) {
    invalidOption(
      `${prefix}sampleIntervalMs`,
      `greater than ${prefix}sampleWindowMs (${resolved.sampleWindowMs})`,
      resolved.sampleIntervalMs,
    );
  }
}

function resolve(options: PromiseOptions | undefined, prefix: string): ResolvedPromiseOptions {
  if (options === undefined) return DEFAULTS;
  const resolved = resolveShape(MONITOR_SHAPE, options, prefix.replace(/\.$/, ''));
  checkWindows(resolved, prefix);
  return resolved as ResolvedPromiseOptions;
}
