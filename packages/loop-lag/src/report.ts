// One report builder for every thread: a stall as the watchdog thread captured it, turned into a
// WatchdogStallReport with the request it ran for, by the rules of docs/loop-lag.md.

import { type ExpectedFlag, expectedState } from './expected.js';
import { SLOT } from './heartbeat.js';
import type { StallCapture } from './protocol.js';
import type { RequestSource, StallWatchdogOptions, WatchdogStallReport } from './types.js';

/** A frame of the application's own code, when the caller gives no frameFilter. */
const isApplicationUrl = (url: string) => url !== '' && !url.startsWith('node:') && !/[\\/]node_modules[\\/]/.test(url);

/** `fn()`, or `fallback` when it throws: for callbacks of the caller's that must not break a report. */
export function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

/** What the thread the report is for answers, for what the capture did not read. */
export interface ReportContext<S extends object> {
  options: StallWatchdogOptions<S>;
  /** Some in-flight scopes, copied. */
  candidates(): S[];
  /** The scope current when the latest expectBlocking() began, once. */
  declaredScope(): S | undefined;
}

/**
 * The report of a captured stall: every field the watchdog thread measured, as it is, and the
 * request. The scope read on the paused frame names the request when the pause landed while the
 * thread was blocked, or, landing late, inside the same synchronous call; never guessed otherwise.
 */
export function reportOf<S extends object>(captured: StallCapture, here: ReportContext<S>): WatchdogStallReport<S> {
  const { scope, ...measured } = captured;
  const report: WatchdogStallReport<S> = { ...measured, inflight: 0 };
  let seen: { request?: S | null; inflight?: number; candidates?: S[] } | undefined;
  try {
    if (scope !== undefined) seen = JSON.parse(scope);
  } catch {
    // A scope that does not serialize is left out, not guessed.
  }
  const requestSource = seen?.request ? requestSourceOf(captured, here.options.frameFilter ?? isApplicationUrl) : undefined;
  if (seen?.request && requestSource) {
    report.request = seen.request;
    report.requestSource = requestSource;
  }
  report.inflight = seen?.inflight ?? safe(() => here.options.inflight(), 0);
  if (!report.request) {
    const candidates = seen?.candidates ?? here.candidates();
    if (candidates.length > 0) report.candidates = candidates;
  }
  if (captured.expected) {
    const declared = here.declaredScope();
    if (declared !== undefined) {
      report.request = declared;
      report.requestSource = 'expectBlocking';
      delete report.candidates;
    }
  }
  return report;
}

/**
 * Whether the paused scope is the blocker's. A late pause landed at the first interrupt check
 * after native code returned: whatever it ran next may be another request's (a microtask, the next
 * timer), but a frame below the top was on the stack before the pause was asked, so an
 * application frame there means the pause landed inside the synchronous call that blocked.
 */
function requestSourceOf(captured: StallCapture, isApp: (url: string) => boolean): RequestSource | undefined {
  if (captured.stackSource === 'pause') return 'pause';
  if (captured.stackSource !== 'late-pause') return undefined;
  return captured.stack.slice(captured.enteredAfter ?? 1).some((frame) => safe(() => isApp(frame.url), false)) ? 'late-pause' : undefined;
}

/**
 * A stall the watched thread timed itself (no watchdog thread, or none in time): no stack; marked
 * expected when an expectBlocking() call ended within it (`beganMs`: monotonic ms of its last beat).
 */
export function timedReport<S>(durationMs: number, at: number, beganMs: number): WatchdogStallReport<S> {
  const expected = expectedState().endedAt > beganMs;
  const report: WatchdogStallReport<S> = {
    durationMs,
    at,
    stack: [],
    stackSource: 'none',
    inflight: 0,
    stackSkipped: expected ? 'expected' : 'unavailable',
  };
  if (expected) report.expected = true;
  return report;
}

/**
 * A watchdog's part in expectBlocking(): the flag in its heartbeat the watchdog thread reads, and
 * the request the declared blocking runs for (its stall takes no pause to read it).
 */
export class DeclaredBlocking<S extends object> {
  readonly #flag: ExpectedFlag;
  #scope: S | undefined;

  constructor(beats: Int32Array, getScope: () => S | undefined) {
    this.#flag = {
      beats,
      slot: SLOT.expected,
      endSlot: SLOT.expectedEnd,
      enter: () => {
        this.#scope = safe(getScope, undefined);
      },
    };
    const state = expectedState();
    state.flags.add(this.#flag);
    if (state.depth > 0) Atomics.store(beats, SLOT.expected, 1);
  }

  /** A copy, as the paused thread's scope reader would give: the route as resolved by now. */
  take(): S | undefined {
    const scope = this.#scope;
    this.#scope = undefined;
    return scope === undefined ? undefined : safe(() => JSON.parse(JSON.stringify(scope)) as S, undefined);
  }

  close(): void {
    expectedState().flags.delete(this.#flag);
  }
}
