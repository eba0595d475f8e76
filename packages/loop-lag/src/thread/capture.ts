// One capture sequence for every thread: probe, pause, read, resume. What differs between the
// main thread and a worker is how commands reach it (the Target), nothing else.

import { SLOT } from '../heartbeat.js';
import type { Problem } from '../protocol.js';
import type { WatchdogStackFrame } from '../types.js';
import { type Naps, within } from './clock.js';
import type { CallFrame, Target } from './target.js';

export interface Captured {
  stack: WatchdogStackFrame[];
  /** Each frame's script's sourceMappingURL as V8 read it, when it has one. */
  maps: (string | undefined)[];
  /** JSON of { request, inflight, candidates } read on the paused thread. */
  scope?: string;
  /** How long after it was asked the thread took the pause, ms (Infinity: unknown, taken as late). */
  delayMs: number;
  /** A late pause: 1 if its top frame was entered after the pause was asked, 0 if it was already running. */
  enteredAfter?: 0 | 1;
  /** Native backend: how many samples agreed on this stack. */
  samples?: number;
  /**
   * The thread was inside expectBlocking() when its stack was read: a pause asked for before the
   * declared work began (the stall began earlier) landed in it.
   */
  declared?: true;
}

export interface CaptureContext {
  /** The watched thread's heartbeat, and the beat its stall began after: a new one means it runs again. */
  beat: Int32Array;
  seq: number;
  /** The thread, as messages name it: 'main thread' or 'worker'. */
  noun: string;
  maxFrames: number;
  latePauseMs: number;
  scopeExpression: string;
  /** Longest wait for an answer due at once (the thread is paused, or runs again). */
  commandTimeoutMs: number;
  /** Longest wait for the thread to take the pause while it is still blocked. */
  reachTimeoutMs: number;
  pollMs: number;
  naps: Naps;
  now: () => number;
  /** The process exits: an exiting process will not come back for a pause. */
  exiting: () => boolean;
  onError: (problem: Problem, error: unknown) => void;
}

class Gone extends Error {}

/**
 * Pauses the thread, reads its stack and scope, and lets it go. Everything after the pause is
 * asked for sits in the one `finally` that releases the thread. `foreign`: the pause that came was
 * a debugger's, and is left to it; `gone`: the thread is no longer there.
 */
export async function capture(target: Target, c: CaptureContext): Promise<Captured | 'foreign' | 'gone'> {
  if (!(await target.open())) {
    await target.release(false);
    return 'gone';
  }
  // Commands reach the thread at V8's next interrupt check, which native code such as JSON.parse
  // does not make: when a trivial command sent first is answered tells whether the blocking work
  // had already returned when the pause landed. It runs no JavaScript: an evaluation on the
  // running thread swallows a V8 termination that comes while it runs (a vm timeout,
  // worker.terminate(): measured).
  const delay = target.probe();
  const landing = target.nextPause();
  let paused = false;
  try {
    await whileBlocked(target.askPause(), c, target, 'the debugger could not be enabled and asked to pause');
    const landed = await whileBlocked(landing, c, target, `the ${c.noun} did not pause`);
    if (landed === 'foreign') return 'foreign';
    paused = true;
    // Read while the thread is held: the flag cannot move under it.
    const declared = Atomics.load(c.beat, SLOT.expected) === 1;
    const frames = landed.frames.slice(0, c.maxFrames);
    const scope = frames[0] ? await readScope(target, c) : undefined;
    const stack = frames.map((f) => ({
      functionName: f.functionName,
      url: f.url || target.script(f.location.scriptId).url || '',
      line: f.location.lineNumber + 1,
      column: (f.location.columnNumber ?? 0) + 1,
    }));
    const maps = frames.map((f) => target.script(f.location.scriptId).map);
    const delayMs = delay(landed.at);
    const enteredAfter = delayMs > c.latePauseMs && frames[0] ? await atEntry(target, frames[0], c) : undefined;
    const captured: Captured = { stack, maps, delayMs };
    if (scope !== undefined) captured.scope = scope;
    if (enteredAfter !== undefined) captured.enteredAfter = enteredAfter ? 1 : 0;
    if (declared) captured.declared = true;
    return captured;
  } catch (error) {
    if (error instanceof Gone) return 'gone';
    throw error;
  } finally {
    target.endWait();
    await target.release(paused);
  }
}

/**
 * Waits for an answer the thread gives only when it next runs JavaScript: without limit while the
 * stall lasts (waiting costs the thread nothing, and native code can hold it for seconds), then
 * commandTimeoutMs once it beats again, and never longer than reachTimeoutMs.
 */
async function whileBlocked<T>(promise: Promise<T>, c: CaptureContext, target: Target, what: string): Promise<T> {
  let out: { value: T } | { error: unknown } | undefined;
  promise.then(
    (value) => {
      out = { value };
      c.naps.wakeAll();
    },
    (error) => {
      out = { error };
      c.naps.wakeAll();
    },
  );
  const started = c.now();
  let ranAt: number | undefined;
  while (!out) {
    const now = c.now();
    if (c.exiting()) throw new Error(`${what}: the process exits`);
    if (target.gone()) throw new Gone();
    if (ranAt === undefined && Atomics.load(c.beat, SLOT.seq) !== c.seq) ranAt = now;
    if (now - started > c.reachTimeoutMs || (ranAt !== undefined && now - ranAt > c.commandTimeoutMs)) {
      throw new Error(`${what}: no answer`);
    }
    await c.naps.nap(c.pollMs);
  }
  if ('error' in out) throw out.error;
  return out.value;
}

async function readScope(target: Target, c: CaptureContext): Promise<string | undefined> {
  try {
    // Runtime.evaluate, not evaluateOnCallFrame: in a frame of Node's own modules, globals such as
    // Symbol are not in scope, and evaluateOnCallFrame swallows a pending V8 termination (a vm
    // timeout, measured on Node 20, 24 and 26). The async context is the paused one either way.
    // No `timeout`: V8 cancels any pending termination when an evaluation with one ends, which
    // left a vm timeout or worker.terminate() that fired during the pause lost for good. The reader
    // is loopsight's own bounded code (and the route resolvers requests run anyway).
    const params = { expression: c.scopeExpression, returnByValue: true, silent: true };
    const evaluated = (await within(target.command('Runtime.evaluate', params, 'evaluate'), c.commandTimeoutMs, 'Runtime.evaluate')) as {
      result?: { value?: unknown };
    };
    const value = evaluated.result?.value;
    return typeof value === 'string' ? value : undefined;
  } catch (error) {
    c.onError('scope', error);
    return undefined;
  }
}

/**
 * Whether a late pause's top frame was entered after the pause was asked. V8 takes the interrupt
 * at the entry of the first function called once native code returned (the break itself may come a
 * statement or two later), so a top frame that was already running is one that had made a call
 * before the point where it stopped: the native call that blocked. One that made none was entered
 * afterwards. Undefined when that cannot be told.
 */
async function atEntry(target: Target, frame: CallFrame, c: CaptureContext): Promise<boolean | undefined> {
  if (!frame.functionLocation) return undefined;
  try {
    const params = { start: frame.functionLocation, end: frame.location, restrictToFunction: true };
    const answer = (await within(
      target.command('Debugger.getPossibleBreakpoints', params),
      c.commandTimeoutMs,
      'Debugger.getPossibleBreakpoints',
    )) as {
      locations?: { type?: string }[];
    };
    return Array.isArray(answer.locations) ? !answer.locations.some((l) => l?.type === 'call') : undefined;
  } catch {
    return undefined;
  }
}
