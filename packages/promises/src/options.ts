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

const KEYS = Object.freeze(Object.keys(DEFAULTS));

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Throws the `TypeError` every refused option gets: `loopsight: options.<name> must be <accepted> (got …)`. */
function fail(name: string, accepted: string, value: unknown): never {
  throw new TypeError(`loopsight: options${name ? `.${name}` : ''} must be ${accepted} (got ${describe(value)})`);
}

function positive(name: string, value: unknown, fallback: number, { integer = false, max = Number.MAX_SAFE_INTEGER }): number {
  if (value === undefined) return fallback;
  const ok = typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= max && (!integer || Number.isInteger(value));
  if (!ok) fail(name, `a positive ${integer ? 'integer' : 'number'} up to ${max}`, value);
  return value as number;
}

function frameFilter(name: string, value: unknown): ResolvedPromiseOptions['frameFilter'] {
  if (value === undefined) return DEFAULTS.frameFilter;
  if (typeof value !== 'function') fail(name, 'a function', value);
  return value as ResolvedPromiseOptions['frameFilter'];
}

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
  return resolve(options, prefix, MODES, []);
}

/** `createPromiseTracker()`'s options, resolved: the settings above and the tracker's own callbacks. */
export type ResolvedTrackerOptions<S extends object> = Omit<ResolvedPromiseOptions, 'mode'> &
  Pick<PromiseTrackerOptions<S>, 'getScope' | 'onReport' | 'onError' | 'partition'> & { readonly mode: TrackerMode };

const CALLBACKS = Object.freeze(['getScope', 'onReport', 'onError', 'partition']);

function callback(name: string, value: unknown, required: boolean): void {
  if (typeof value === 'function' || (value === undefined && !required)) return;
  fail(name, 'a function', value);
}

/** `createPromiseTracker()`'s: the same settings but `off`, and its callbacks are options too. */
export function resolveTrackerOptions<S extends object>(options: PromiseTrackerOptions<S>): ResolvedTrackerOptions<S> {
  if (typeof options !== 'object' || options === null) fail('', 'an object', options);
  const { getScope, onReport, onError, partition, ...settings } = options;
  callback('getScope', getScope, true);
  callback('onReport', onReport, true);
  callback('onError', onError, false);
  callback('partition', partition, false);
  // TRACKER_MODES leaves `off` out: the mode that comes back is one a tracker runs in.
  const resolved = resolve(settings, '', TRACKER_MODES, CALLBACKS) as ResolvedPromiseOptions & { readonly mode: TrackerMode };
  return { ...resolved, getScope, onReport, ...(onError && { onError }), ...(partition && { partition }) };
}

function resolve(
  options: PromiseOptions | undefined,
  prefix: string,
  modes: readonly Mode[],
  otherKeys: readonly string[],
): ResolvedPromiseOptions {
  if (options === undefined) return DEFAULTS;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) fail(prefix.replace(/\.$/, ''), 'an object', options);
  for (const key of Object.keys(options)) {
    if (KEYS.includes(key) || otherKeys.includes(key)) continue;
    throw new TypeError(`loopsight: unknown option options.${prefix}${key}; accepted: ${[...KEYS, ...otherKeys].join(', ')}`);
  }
  const mode = options.mode ?? DEFAULTS.mode;
  if (!modes.includes(mode)) fail(`${prefix}mode`, `one of ${modes.map((m) => `'${m}'`).join(', ')}`, mode);
  const sampleWindowMs = positive(`${prefix}sampleWindowMs`, options.sampleWindowMs, DEFAULTS.sampleWindowMs, { max: 3_600_000 });
  const sampleIntervalMs = positive(`${prefix}sampleIntervalMs`, options.sampleIntervalMs, DEFAULTS.sampleIntervalMs, { max: 86_400_000 });
  if (sampleIntervalMs <= sampleWindowMs) {
    fail(`${prefix}sampleIntervalMs`, `greater than ${prefix}sampleWindowMs (${sampleWindowMs})`, sampleIntervalMs);
  }
  return Object.freeze({
    mode,
    leakAfterMs: positive(`${prefix}leakAfterMs`, options.leakAfterMs, DEFAULTS.leakAfterMs, { max: 3_600_000 }),
    sampleWindowMs,
    sampleIntervalMs,
    maxTracked: positive(`${prefix}maxTracked`, options.maxTracked, DEFAULTS.maxTracked, { integer: true, max: 10_000_000 }),
    stackDepth: positive(`${prefix}stackDepth`, options.stackDepth, DEFAULTS.stackDepth, { integer: true, max: 200 }),
    frameFilter: frameFilter(`${prefix}frameFilter`, options.frameFilter),
  });
}
