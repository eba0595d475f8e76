// Blocking the application declared: the watchdog's worker reads a flag in shared memory and takes
// no stack for it. One state per process, shared by every copy of this module (ESM and CJS
// builds, two installs), like the scope registry.

import { LoopsightTypeError } from '@loopsight/options';

const STATE = Symbol.for('loopsight.loop-lag.expected.v1');

interface ExpectedState {
  /** expectBlocking() calls under way (nested ones count). */
  depth: number;
  /** The flag of each running watchdog (slot `slot` of its shared heartbeat) and what it does on entry. */
  flags: Set<ExpectedFlag>;
  /** Monotonic ms (process.hrtime) when the last expected block ended, for watchdogs timing stalls themselves. */
  endedAt: number;
}

export interface ExpectedFlag {
  beats: Int32Array;
  slot: number;
  /** Slot where the end of the latest call is written (ms, as the heartbeat's clock). */
  endSlot?: number;
  /** Called as an outermost expectBlocking() call begins: the watchdog notes the request it runs for. */
  enter(): void;
}

export function expectedState(): ExpectedState {
  const g = globalThis as unknown as Record<symbol, ExpectedState | undefined>;
  g[STATE] ??= { depth: 0, flags: new Set(), endedAt: Number.NEGATIVE_INFINITY };
  return g[STATE];
}

/**
 * Runs `fn` as blocking that is known and accepted (a PDF render, a bcrypt hash in an admin job): a
 * stall while it runs is still timed and counted, marked `expected`, but the loop is not paused
 * for its stack and no report line is written. Covers the synchronous run of `fn` (for an async
 * function, until its first `await`): the part that can block the loop, and only that: blocking
 * that follows it in the same turn is reported as a stall of its own, from where `fn` returned.
 * Returns what `fn` returns.
 *
 * @example
 * const pdf = expectBlocking(() => renderInvoicePdf(order));
 */
export function expectBlocking<T>(fn: () => T): T {
  if (typeof fn !== 'function')
    throw new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', `loopsight: expectBlocking(fn) takes a function (got ${typeof fn})`);
  const state = expectedState();
  if (state.depth++ === 0) {
    for (const flag of state.flags) {
      Atomics.store(flag.beats, flag.slot, 1);
      flag.enter();
    }
  }
  try {
    return fn();
  } finally {
    if (--state.depth === 0) {
      // The heartbeat's clock: blocking after this point is the watchdog's to report.
      const ended = Number(process.hrtime.bigint()) / 1e6;
      const endMs = Math.floor(ended) | 0;
      for (const { beats, slot, endSlot } of state.flags) {
        if (endSlot !== undefined) Atomics.store(beats, endSlot, endMs);
        Atomics.store(beats, slot, 0);
      }
      state.endedAt = ended;
    }
  }
}
