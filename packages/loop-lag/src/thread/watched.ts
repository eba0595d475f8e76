// One engine for every watched thread: how a stall is handled, from the stale heartbeat to the
// report, is written once. The main thread and a worker differ in parameters only (`Side`).

import { beatEveryMs, int32Ms, SLOT, since } from '../heartbeat.js';
import type { NativeAddon } from '../native.js';
import type { Problem, StallCapture, WatchConfig } from '../protocol.js';
import type { StackSkipped, WatchdogStackFrame } from '../types.js';
import { TokenBucket } from './bucket.js';
import { type CaptureContext, type Captured, capture } from './capture.js';
import type { Naps } from './clock.js';
import type { Faults } from './faults.js';
import { sampleNative } from './native-capture.js';
import type { Target } from './target.js';

/** What every watched thread of the watchdog thread shares. */
export interface Shared {
  naps: Naps;
  now: () => number;
  /** The inspector loaded: captures are possible at all. */
  stacks: boolean;
  /** The native addon, loaded at the first thread that asks for the native backend; undefined if it did not load. */
  native: () => NativeAddon | undefined;
  faults: Faults;
  /** A debugger may be attached: no thread is paused meanwhile. */
  debuggers: Debuggers;
  /** Source-maps a captured stack (after the thread runs again); `stall` is what to report should mapping end this thread. */
  mapStack: (captured: Captured, stall: { durationMs: number; at: number; thread: number }) => WatchdogStackFrame[];
  commandTimeoutMs: number;
  reachTimeoutMs: number;
  /** The process exits. */
  exiting: () => boolean;
}

/** A debugger seen on the process: an open inspector server, or a pause we did not ask for. */
export class Debuggers {
  seenAt = Number.NEGATIVE_INFINITY;
  readonly #mainBeat: Int32Array;
  readonly #quietMs: number;
  readonly #now: () => number;

  constructor(mainBeat: Int32Array, quietMs: number, now: () => number) {
    this.#mainBeat = mainBeat;
    this.#quietMs = quietMs;
    this.#now = now;
  }

  /** An inspector server is open on the main thread. */
  serverOpen(): boolean {
    return Atomics.load(this.#mainBeat, SLOT.debugger) === 1;
  }

  attached(): boolean {
    return this.serverOpen() || this.#now() - this.seenAt < this.#quietMs;
  }

  seen(): void {
    this.seenAt = this.#now();
  }
}

/** How one kind of thread differs. */
export interface Side {
  /** 0 for the main thread. */
  threadId: number;
  /** As messages name it: 'main thread' or 'worker'. */
  noun: 'main thread' | 'worker';
  /** The thread's debugger for the next capture. */
  target: () => Target;
  /** The main thread samples a profile: a late or failed pause asks for its stack. */
  profiler: boolean;
  /** False once the watchdog stops watching workers: their stalls are timed only. */
  mayCapture: () => boolean;
  /** The thread is no longer watched (it exited): its stall is forgotten. */
  gone: () => boolean;
  /** A capture found the thread gone: it is watched no more. */
  forget: () => void;
  /** A debugger held the thread's stall. */
  onAttached: () => void;
  deliver: (stall: StallCapture, extra: { window: [number, number]; wantsProfile: boolean; seq: number }) => void;
  onError: (problem: Problem, error: unknown) => void;
}

type Delivery = Parameters<Side['deliver']>;

export class Watched {
  readonly config: WatchConfig;
  readonly beat: Int32Array;
  /** A stall of this thread is being handled. */
  handling = false;
  readonly #shared: Shared;
  readonly #side: Side;
  readonly #bucket: TokenBucket;

  constructor(config: WatchConfig, shared: Shared, side: Side) {
    this.config = config;
    this.beat = new Int32Array(config.heartbeat);
    this.#shared = shared;
    this.#side = side;
    this.#bucket = new TokenBucket(config.maxStacksPerMinute, shared.now);
  }

  /**
   * Handles the stall that began with the beat `lastBeat`, `age` ms ago, until it ends. `after`:
   * the stall is the blocking that followed expectBlocking() in the same turn, from `lastBeat` on;
   * `declared` is the report of the declared part, delivered just before this one.
   */
  async stalled(lastBeat: number, seq: number, now: number, age: number, after = false, declared?: Delivery): Promise<void> {
    const { config, beat } = this;
    const shared = this.#shared;
    const side = this.#side;
    const startedMono = now - age;
    const startedAt = Date.now() - age;
    let captured: Captured | undefined;
    let skipped: StackSkipped | undefined;
    let attached = false;
    const native = config.capture === 'native';
    // Began inside expectBlocking(): the flag is still up, or (this thread woke late, as on a
    // starved machine) the declared work already ended within this stall, after its last beat.
    const lastDeclaredEnd = Atomics.load(beat, SLOT.expectedEnd);
    const declaredEndedSince = since(lastDeclaredEnd, lastBeat) > 0 && since(int32Ms(now), lastDeclaredEnd) >= 0;
    let expected = !after && (Atomics.load(beat, SLOT.expected) === 1 || declaredEndedSince);
    if (expected) {
      // expectBlocking() covers only its own run: blocking that follows it is a stall of its own.
      const end = await this.#declaredEnd(seq);
      if (end !== undefined) {
        const declaredMs = since(end, lastBeat) - beatEveryMs(beat, config.heartbeatMs);
        const part: Delivery | undefined =
          declaredMs >= config.thresholdMs
            ? [
                { durationMs: declaredMs, at: startedAt, stack: [], stackSource: 'none', stackSkipped: 'expected', expected: true },
                { window: [startedMono * 1000, (startedMono + declaredMs) * 1000], wantsProfile: false, seq },
              ]
            : undefined;
        const restNow = shared.now();
        return this.stalled(end, seq, restNow, since(int32Ms(restNow), end), true, part);
      }
      skipped = 'expected';
    } else if (!config.captureStacks) skipped = 'disabled';
    else if (native ? !shared.native() : !shared.stacks) skipped = 'unavailable';
    // The native backend runs no debugger: one attached, or pausing, changes nothing for it.
    else if (!native && shared.debuggers.attached()) attached = true;
    else if (!side.mayCapture() || !this.#bucket.take()) skipped = 'rate-limited';
    else if (native) {
      try {
        const addon = shared.native();
        if (addon) captured = await sampleNative(addon, this.#nativeContext(seq));
      } catch (error) {
        side.onError('capture', error);
      }
    } else {
      try {
        const result = await capture(side.target(), this.#context(seq));
        if (result === 'gone') {
          side.forget();
          return;
        }
        if (result === 'foreign') attached = true;
        else captured = result;
      } catch (error) {
        side.onError('capture', error);
      }
    }
    if (attached) {
      skipped = 'unavailable';
      side.onAttached();
    }
    if (captured?.declared && !after) {
      // Asked for before expectBlocking() began, the pause landed inside it: the stack is of work
      // the application declared, so the stall is reported as expected, without it.
      captured = undefined;
      skipped = 'expected';
      expected = true;
    }
    // Nothing of ours holds the thread from here on: this wait only reads shared memory.
    while (Atomics.load(beat, SLOT.seq) === seq && !shared.exiting()) {
      if (side.gone()) return;
      await shared.naps.nap(config.heartbeatMs);
    }
    // A debugger that held the thread is likely still attached: stay quiet from its last stop.
    if (attached && shared.debuggers.seenAt > startedMono) shared.debuggers.seen();
    if (declared) side.deliver(...declared);
    const endedMono = shared.now();
    // The gap the thread measured, not the age of its latest beat: a capture that outlasts the
    // stall reads the beat several beats after the stall ended.
    const beatGap = since(Atomics.load(beat, SLOT.ms), lastBeat);
    const gapMs = Atomics.exchange(beat, SLOT.gap, 0) || beatGap || endedMono - startedMono;
    // How late the loop ran: the gap between beats minus the beat interval; for the blocking after
    // expectBlocking(), from its end to the next beat.
    const durationMs = after ? Math.max(0, beatGap || endedMono - startedMono) : Math.max(0, gapMs - beatEveryMs(beat, config.heartbeatMs));
    if (durationMs < config.thresholdMs) return;
    const late = captured !== undefined && captured.delayMs > config.latePauseMs;
    const stall: StallCapture = { durationMs, at: startedAt, stack: [], stackSource: 'none', capture: config.capture };
    if (expected) stall.expected = true;
    if (captured) {
      if (Number.isFinite(captured.delayMs)) stall.pauseDelayMs = Math.round(captured.delayMs * 10) / 10;
      if (captured.scope !== undefined) stall.scope = captured.scope;
      stall.stack = shared.mapStack(captured, { durationMs, at: startedAt, thread: side.threadId });
      stall.stackSource = late ? 'late-pause' : 'pause';
      if (late && captured.enteredAfter !== undefined) stall.enteredAfter = captured.enteredAfter;
      if (captured.samples !== undefined) stall.samples = captured.samples;
    }
    if (skipped) stall.stackSkipped = skipped;
    if (attached) stall.debuggerAttached = true;
    const wantsProfile =
      side.profiler && (late || (captured === undefined && !skipped && (native ? shared.native() !== undefined : shared.stacks)));
    side.deliver(stall, { window: [startedMono * 1000, (startedMono + gapMs) * 1000], wantsProfile, seq });
  }

  /**
   * While a stall that began inside expectBlocking() lasts: when the declared work ended (ms as
   * SLOT.ms), once the thread has stayed blocked a threshold past it; undefined if it ran again.
   */
  async #declaredEnd(seq: number): Promise<number | undefined> {
    const { beat, config } = this;
    while (Atomics.load(beat, SLOT.seq) === seq && !this.#shared.exiting() && !this.#side.gone()) {
      if (Atomics.load(beat, SLOT.expected) === 0) {
        const end = Atomics.load(beat, SLOT.expectedEnd);
        if (since(int32Ms(this.#shared.now()), end) >= config.thresholdMs) return end;
      }
      await this.#shared.naps.nap(config.heartbeatMs);
    }
    return undefined;
  }

  #nativeContext(seq: number): Parameters<typeof sampleNative>[1] {
    const shared = this.#shared;
    return {
      beat: this.beat,
      seq,
      name: this.config.nativeName,
      maxFrames: this.config.maxFrames,
      latePauseMs: this.config.latePauseMs,
      naps: shared.naps,
      now: shared.now,
      exiting: shared.exiting,
      faults: shared.faults,
    };
  }

  #context(seq: number): CaptureContext {
    const { config } = this;
    const shared = this.#shared;
    return {
      beat: this.beat,
      seq,
      noun: this.#side.noun,
      maxFrames: config.maxFrames,
      latePauseMs: config.latePauseMs,
      scopeExpression: config.scopeExpression,
      commandTimeoutMs: shared.commandTimeoutMs,
      reachTimeoutMs: shared.reachTimeoutMs,
      pollMs: config.heartbeatMs,
      naps: shared.naps,
      now: shared.now,
      exiting: shared.exiting,
      onError: this.#side.onError,
    };
  }
}
