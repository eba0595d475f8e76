import type { LoopsightCode } from './codes.js';

// One brand for every copy of this package (ESM and CJS builds, two versions in node_modules).
const BRAND: unique symbol = Symbol.for('loopsight.error') as never;

/** What an error or a warning may say beyond its message. */
export interface LoopsightErrorDetails {
  /** The option at fault, from the options object's root: `loopLag.stallThresholdMs`. */
  path?: string;
  /** What the option accepts, in words: `a number of ms from 10 to 3600000`. */
  accepted?: string;
  /** Names a warning's source among those of its code (an exporter, a callback), for once-only reporting. */
  site?: string;
  cause?: unknown;
}

function brand(error: Error, code: LoopsightCode, details: LoopsightErrorDetails | undefined): void {
  Object.defineProperty(error, BRAND, { value: true });
  const target = error as Error & { code: string; path?: string; accepted?: string; site?: string };
  target.code = code;
  if (details?.path !== undefined) target.path = details.path;
  if (details?.accepted !== undefined) target.accepted = details.accepted;
  if (details?.site !== undefined) target.site = details.site;
}

function options(details: LoopsightErrorDetails | undefined): ErrorOptions | undefined {
  return details && 'cause' in details ? { cause: details.cause } : undefined;
}

/**
 * A loopsight error: a stable `code` (`ERR_LOOPSIGHT_*`, see `CODES`) and, for an option, its
 * `path`. `instanceof LoopsightError` is true of {@link LoopsightTypeError} and
 * {@link LoopsightRangeError} too, whichever copy of the package made them.
 *
 * @example
 * if (error instanceof LoopsightError && error.code === 'ERR_LOOPSIGHT_INVALID_OPTION') console.error(error.path);
 */
export class LoopsightError extends Error {
  declare readonly code: LoopsightCode;
  declare readonly path?: string;
  declare readonly accepted?: string;
  declare readonly site?: string;

  constructor(code: LoopsightCode, message: string, details?: LoopsightErrorDetails) {
    super(message, options(details));
    brand(this, code, details);
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return isLoopsightError(value);
  }
}
Object.defineProperty(LoopsightError.prototype, 'name', { value: 'LoopsightError' });

/** A {@link LoopsightError} that is a `TypeError` too: what every refused option throws. */
export class LoopsightTypeError extends TypeError {
  declare readonly code: LoopsightCode;
  declare readonly path?: string;
  declare readonly accepted?: string;

  constructor(code: LoopsightCode, message: string, details?: LoopsightErrorDetails) {
    super(message, options(details));
    brand(this, code, details);
  }
}
Object.defineProperty(LoopsightTypeError.prototype, 'name', { value: 'TypeError' });

/** A {@link LoopsightError} that is a `RangeError` too. */
export class LoopsightRangeError extends RangeError {
  declare readonly code: LoopsightCode;
  declare readonly path?: string;
  declare readonly accepted?: string;

  constructor(code: LoopsightCode, message: string, details?: LoopsightErrorDetails) {
    super(message, options(details));
    brand(this, code, details);
  }
}
Object.defineProperty(LoopsightRangeError.prototype, 'name', { value: 'RangeError' });

/** Whether `value` is an error or a warning made by loopsight (any copy of it), which then has a `code`. */
export function isLoopsightError(value: unknown): value is LoopsightError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

/** The text a problem shows: an Error's message, else the value as a string (bounded). */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

/**
 * A warning with a code, for `onError(what, error)` callbacks and the monitor's `reportError`: an
 * Error named `LoopsightWarning` whose message is `cause`'s (the problem met), with `code`, the
 * `site` that tells two sources of one code apart (the monitor reports each code + site once), and
 * the original error as `cause`. A cause that already is a loopsight warning is returned as is.
 *
 * @example
 * onError('the exporter could not record a stall', warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: 'otel:stall' }));
 */
export function warning(code: LoopsightCode, cause: unknown, details?: Pick<LoopsightErrorDetails, 'site' | 'path'>): LoopsightError {
  if (isLoopsightError(cause)) return cause;
  const made = new LoopsightError(code, describeError(cause), { ...details, cause });
  Object.defineProperty(made, 'name', { value: 'LoopsightWarning' });
  return made;
}

/** The code a reported problem carries, `LOOPSIGHT_WARNING` when it has none of ours. */
export function codeOf(error: unknown): LoopsightCode {
  return isLoopsightError(error) ? error.code : 'LOOPSIGHT_WARNING';
}

/**
 * What a reported problem is, for reporting it once: its code and site, or, for a problem with no
 * code yet, the `what` it was reported with.
 */
export function warningKey(what: string, error: unknown): string {
  if (!isLoopsightError(error)) return `LOOPSIGHT_WARNING\u0000${what}`;
  return `${error.code}\u0000${error.site ?? ''}`;
}
