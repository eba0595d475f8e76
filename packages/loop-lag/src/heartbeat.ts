// The heartbeat a watched thread writes into shared memory and the watchdog thread reads. Both
// sides import this module: the slot numbers and the timing rules are written once.

/** Slots of the Int32Array over the SharedArrayBuffer a watched thread and the watchdog thread share. */
export const SLOT = Object.freeze({
  /** Monotonic ms of the latest beat, as an Int32 (it wraps every 24.8 days: compare with `since`). */
  ms: 0,
  /** Beats so far: a stall ends when it moves. */
  seq: 1,
  /** 1 while the main thread has an inspector server open: a debugger may be attached. */
  debugger: 2,
  /** Set to 1 by the main thread when the process exits or its watchdog stops. */
  exiting: 3,
  /** 1 while the watchdog thread handles a stall or holds an inspector session: an exit must wait for it. */
  busy: 4,
  /** The longest gap between two beats, ms, since the watchdog thread last took it. */
  gap: 5,
  /** 1 while the thread runs inside expectBlocking(): a stall then takes no stack. */
  expected: 6,
  /** When the latest expectBlocking() call ended, ms as in `ms`: blocking after it is not declared. */
  expectedEnd: 7,
  /** When the gap in `gap` ended, ms as in `ms`: a missed stall is placed in time by it. */
  gapEnd: 8,
  /** The interval the thread beats at now, ms: its own timer's, or a delay recorder's it rides on (ticks.ts). */
  every: 9,
});

const SLOTS = 10;

/**
 * How often the thread beats now: a stall lasts the gap between two beats minus this. Read from the
 * heartbeat, as the thread may move from its own timer to a delay recorder's tick and back.
 */
export function beatEveryMs(beats: Int32Array, fallbackMs: number): number {
  return Atomics.load(beats, SLOT.every) || fallbackMs;
}

/** Most frames a stall's stack keeps. */
export const MAX_FRAMES = 32;

export function createHeartbeat(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT));
}

/**
 * How often a thread beats for a threshold: a stall is timed within one interval. The watchdog
 * thread wakes when the last beat could first turn stale, so it sees every stall of at least the
 * threshold while it lasts.
 */
export function heartbeatMsFor(thresholdMs: number): number {
  return Math.max(1, Math.min(25, Math.floor(thresholdMs / 4)));
}

/** A pause normally lands within a millisecond or two; one later than this was held by native code. */
export function latePauseMsFor(thresholdMs: number): number {
  return Math.max(20, thresholdMs / 4);
}

export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Monotonic ms as the heartbeat stores it. */
export const int32Ms = (ms: number): number => Math.floor(ms) | 0;

/** `now - then` for two int32Ms readings: the wrap of the ms counter is harmless. */
export const since = (now: number, then: number): number => (now - then) | 0;
