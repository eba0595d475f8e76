import { LoopsightTypeError } from './errors.js';

/**
 * One option's rule: what it accepts, in words, and how a given value becomes the resolved one
 * (its default when `undefined`). `resolve` throws the `ERR_LOOPSIGHT_INVALID_OPTION` TypeError of
 * {@link invalidOption} on a value it refuses. `path` is where the value sits in the options object
 * (`loopLag.stallThresholdMs`, `''` for the object itself).
 */
export interface Rule<T> {
  readonly accepted: string;
  resolve(value: unknown, path: string): T;
}

/** A declarative schema: one rule per accepted key. */
export type Shape = Readonly<Record<string, Rule<unknown>>>;

/** The object a {@link Shape} resolves to. */
export type Resolved<S extends Shape> = { readonly [K in keyof S]: S[K] extends Rule<infer T> ? T : never };

/** A value as an error message may show it: short, and never an object's contents. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'symbol') return 'a symbol';
  return String(value);
}

const where = (path: string) => (path ? `options.${path}` : 'options');

/**
 * Throws the error every refused value gets: a `TypeError` with code
 * `ERR_LOOPSIGHT_INVALID_OPTION`, `path` and `accepted`, whose message reads
 * `loopsight: options.<path> must be <accepted> (got <value>)`.
 *
 * @example
 * if (typeof value !== 'boolean') invalidOption('traces', 'true or false', value);
 */
export function invalidOption(path: string, accepted: string, value: unknown): never {
  throw new LoopsightTypeError(
    'ERR_LOOPSIGHT_INVALID_OPTION',
    `loopsight: ${where(path)} must be ${accepted} (got ${describeValue(value)})`,
    {
      path,
      accepted,
    },
  );
}

/** Levenshtein distance, bounded by `limit` (returns limit + 1 once it is past it). */
function distance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const value = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + cost);
      current.push(value);
      best = Math.min(best, value);
    }
    if (best > limit) return limit + 1;
    previous = current;
  }
  return previous[b.length] as number;
}

/** The edit distance from `a` to the closest part of `b` (a typo inside a longer name: `treshold` in `stallThresholdMs`). */
function distanceWithin(a: string, b: string): number {
  let previous = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + cost));
    }
    previous = current;
  }
  return Math.min(...previous);
}

/**
 * The known name closest to `name`, if one is close enough to be what was meant: the same but for
 * case or separators, within an edit distance of a third of its length (at least 2), or, for a name
 * of 4 characters or more, that close to a part of a known name (`treshold` → `stallThresholdMs`).
 *
 * @example
 * closestName('treshold', ['stallThresholdMs', 'captureStacks']); // 'stallThresholdMs'
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const plain = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const wanted = plain(name);
  if (wanted === '' || wanted.length > 200) return undefined;
  const limit = Math.max(2, Math.floor(wanted.length / 3));
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const other = plain(candidate);
    let score = Number.POSITIVE_INFINITY;
    if (other === wanted) score = 0;
    else {
      const d = distance(wanted, other, limit);
      if (d <= limit) score = 1 + d;
      else if (wanted.length >= 4) {
        const within = distanceWithin(wanted, other);
        // Worse than any whole-name match: `trace` means `traces` before `tracerProvider`.
        if (within <= Math.floor(wanted.length / 4)) score = limit + 2 + within;
      }
    }
    if (score < bestScore) {
      bestScore = score;
      best = candidate;
    }
  }
  return best;
}

/** `; did you mean 'x'?`, or nothing when no known name is close. */
export function suggestion(name: string, known: readonly string[]): string {
  const close = closestName(name, known);
  return close === undefined ? '' : `; did you mean '${close}'?`;
}

/**
 * Refuses a key of `value` that is not in `known`: a `TypeError` with code
 * `ERR_LOOPSIGHT_UNKNOWN_OPTION` and the key's `path`, whose message lists what is accepted and
 * suggests the closest name: `loopsight: unknown option options.loopLag.treshold; accepted:
 * resolutionMs, stallThresholdMs, …; did you mean 'stallThresholdMs'?`.
 */
export function checkKeys(path: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const at = path ? `${path}.${key}` : key;
    throw new LoopsightTypeError(
      'ERR_LOOPSIGHT_UNKNOWN_OPTION',
      `loopsight: unknown option ${where(at)}; accepted: ${known.join(', ')}${suggestion(key, known)}`,
      { path: at, accepted: known.join(', ') },
    );
  }
}

/** A plain object (not null, not an array). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

/**
 * Resolves `value` by `shape`: `undefined` is `{}`; anything else must be a plain object whose keys
 * are all in the shape; each rule resolves its key. The result is frozen.
 *
 * @example
 * const resolved = resolveShape({ path: string({ default: '/loopsight' }) }, options, '');
 */
export function resolveShape<S extends Shape>(shape: S, value: unknown, path = '', accepted = 'an object'): Resolved<S> {
  const input = value === undefined ? {} : value;
  if (!isPlainObject(input)) invalidOption(path, accepted, value);
  checkKeys(path, input, Object.keys(shape));
  const out: Record<string, unknown> = {};
  for (const [key, rule] of Object.entries(shape)) out[key] = rule.resolve(input[key], join(path, key));
  return Object.freeze(out) as Resolved<S>;
}

/** A nested options object, resolved by its own shape (`undefined` gives its defaults, or `fallback`). */
export function object<S extends Shape>(shape: S, { accepted = 'an object' }: { accepted?: string } = {}): Rule<Resolved<S>> {
  return { accepted, resolve: (value, path) => resolveShape(shape, value, path, accepted) };
}

interface NumberRule<D> {
  /** Smallest value accepted (inclusive); see `above` for an exclusive one. Default: none. */
  min?: number;
  /** Refuse values at or below this one. */
  above?: number;
  max?: number;
  integer?: boolean;
  default?: D;
  /** The words of the message; made from the range when not given. */
  accepted?: string;
}

/**
 * A finite number (an integer with `integer`) in a range.
 *
 * @example
 * number({ min: 10, max: 3_600_000, default: 100, accepted: 'a number of ms from 10 to 3600000' })
 */
export function number<D extends number | undefined = undefined>(rule: NumberRule<D> = {}): Rule<number | D> {
  const { min, above, max, integer = false } = rule;
  const kind = integer ? 'an integer' : 'a number';
  const accepted =
    rule.accepted ??
    (min !== undefined && max !== undefined
      ? `${kind} from ${min} to ${max}`
      : above !== undefined
        ? `${kind} above ${above}${max !== undefined ? ` up to ${max}` : ''}`
        : min !== undefined
          ? `${kind} of at least ${min}`
          : max !== undefined
            ? `${kind} up to ${max}`
            : kind);
  return {
    accepted,
    resolve(value, path) {
      if (value === undefined) return rule.default as D;
      const ok =
        typeof value === 'number' &&
        Number.isFinite(value) &&
        (!integer || Number.isInteger(value)) &&
        (min === undefined || value >= min) &&
        (above === undefined || value > above) &&
        (max === undefined || value <= max);
      if (!ok) invalidOption(path, accepted, value);
      return value as number;
    },
  };
}

/**
 * A positive number (or integer), at most `max`: `a positive integer up to 200`.
 *
 * @example
 * positive({ integer: true, max: 200, default: 10 })
 */
export function positive<D extends number | undefined = undefined>({
  integer = false,
  max = Number.MAX_SAFE_INTEGER,
  default: fallback,
}: {
  integer?: boolean;
  max?: number;
  default?: D;
} = {}): Rule<number | D> {
  const accepted = `a positive ${integer ? 'integer' : 'number'}${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : ''}`;
  return number({ above: 0, max, integer, default: fallback as D, accepted });
}

/** `true` or `false`. */
export function boolean<D extends boolean | undefined = undefined>(fallback?: D): Rule<boolean | D> {
  const accepted = 'true or false';
  return {
    accepted,
    resolve(value, path) {
      if (value === undefined) return fallback as D;
      if (typeof value !== 'boolean') invalidOption(path, accepted, value);
      return value;
    },
  };
}

/**
 * One of a fixed set of values: `one of 'off', 'sampled', 'full'`.
 *
 * @example
 * oneOf(['sampled', 'full'] as const, 'sampled')
 */
export function oneOf<const V extends string | number | boolean, D extends V | undefined = undefined>(
  values: readonly V[],
  fallback?: D,
): Rule<V | D> {
  const accepted = `one of ${values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')}`;
  return {
    accepted,
    resolve(value, path) {
      if (value === undefined) return fallback as D;
      if (!(values as readonly unknown[]).includes(value)) invalidOption(path, accepted, value);
      return value as V;
    },
  };
}

/** A function (`accepted` says its signature in the message: `a function (req) => boolean`). */
export function func<F, D extends F | undefined = undefined>(fallback?: D, accepted = 'a function'): Rule<F | D> {
  return {
    accepted,
    resolve(value, path) {
      if (value === undefined) return fallback as D;
      if (typeof value !== 'function') invalidOption(path, accepted, value);
      return value as F;
    },
  };
}

/** A string, matching `pattern` when given. */
export function string<D extends string | undefined = undefined>({
  pattern,
  accepted = 'a string',
  default: fallback,
}: {
  pattern?: RegExp;
  accepted?: string;
  default?: D;
} = {}): Rule<string | D> {
  return {
    accepted,
    resolve(value, path) {
      if (value === undefined) return fallback as D;
      if (typeof value !== 'string' || (pattern !== undefined && !pattern.test(value))) invalidOption(path, accepted, value);
      return value;
    },
  };
}

/**
 * An array of at most `max` items, each resolved by `item` (its path `path[i]`); frozen.
 *
 * @example
 * array(string({ pattern: /^\//, accepted: 'a route template starting with /' }), { max: 100 })
 */
export function array<T>(
  item: Rule<T>,
  { max = 10_000, accepted }: { max?: number; accepted?: string } = {},
): Rule<readonly T[] | undefined> {
  const words = accepted ?? `an array of at most ${max} items, each ${item.accepted}`;
  return {
    accepted: words,
    resolve(value, path) {
      if (value === undefined) return undefined;
      if (!Array.isArray(value) || value.length > max) invalidOption(path, words, value);
      return Object.freeze(value.map((v: unknown, i: number) => item.resolve(v, `${path}[${i}]`)));
    },
  };
}

/**
 * A rule of your own: `check` returns the resolved value or calls `invalidOption`. `undefined`
 * reaches `check` too, so it decides the default.
 *
 * @example
 * custom('a Registry', (value, path) => (value === undefined ? register : isRegistry(value) ? value : invalidOption(path, 'a Registry', value)))
 */
export function custom<T>(accepted: string, check: (value: unknown, path: string) => T): Rule<T> {
  return { accepted, resolve: check };
}

/** Makes `undefined` resolve to `fallback` instead of what `rule` gives it. */
export function withDefault<T, D>(rule: Rule<T>, fallback: D): Rule<Exclude<T, undefined> | D> {
  return {
    accepted: rule.accepted,
    resolve: (value, path) => (value === undefined ? fallback : (rule.resolve(value, path) as Exclude<T, undefined>)),
  };
}
