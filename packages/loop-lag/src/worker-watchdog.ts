import * as workerThreads from 'node:worker_threads';
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { BeatingThread } from './beating.js';
import { int32Ms, latePauseMsFor, MAX_FRAMES, monotonicMs, SLOT } from './heartbeat.js';
import { LOOP_LAG_DEFAULTS } from './options.js';
import { THREADS_CHANNEL, type ThreadsMessage, type WatchRequest } from './protocol.js';
import { scopeExpression } from './registry.js';
import { timedReport } from './report.js';
import type { StallWatchdog, WatchdogStallReport } from './types.js';

/**
 * How long a stall this thread timed itself waits for the watchdog thread's report of the same
 * stall (with its stack) before it is reported without one, once the watchdog thread watches this
 * one (before that, at once). The report comes within a poll (25 ms) of the stall's end, and a
 * capture's commands are relayed by the main thread: seconds on a machine loaded 9 times over.
 */
const CLAIM_MS = 5_000;

/** This worker's name: Node 22.20+ and 24.6+ tell it (`threadName`), Node 20 does not. */
function threadName(): string {
  const name = (workerThreads as { threadName?: unknown }).threadName;
  return typeof name === 'string' ? name : '';
}

type StallMessage = Extract<ThreadsMessage, { type: 'stall' }>;

/**
 * The stall watchdog of a worker thread. It adds no thread: the worker writes a heartbeat into
 * shared memory, as the main thread does, and hands it to the process's watchdog thread (the one
 * the main thread's watchdog runs) over a BroadcastChannel; that thread pauses the worker through
 * the main thread's inspector (`NodeWorker` domain) to read its stack and scope.
 *
 * The worker also times its own stalls from its heartbeat, so that a stall is reported, without a
 * stack, when no watchdog thread runs (no monitor on the main thread) or it did not answer in time.
 */
export class ThreadWatchdog<S extends object> extends BeatingThread<S> implements StallWatchdog {
  #channel: BroadcastChannel | undefined;
  /** Stalls timed here, by the heartbeat sequence they began after, waiting for the watchdog thread's report. */
  readonly #unclaimed = new Map<number, { report: WatchdogStallReport<S>; timer: NodeJS.Timeout }>();
  /**
   * The sequence of the stall last claimed: a stall that began inside expectBlocking() comes as two
   * reports (the declared part, then the blocking after it), both for the same sequence.
   */
  #claimedSeq: number | undefined;
  #capture: Pick<WatchRequest, 'capture' | 'nativeName'> = { capture: 'inspector', nativeName: '' };

  start(): void {
    if (this.mode !== 'stopped') return;
    // Timed here until the watchdog thread says it watches this one.
    this.mode = 'main-thread';
    this.#capture = this.chooseCapture();
    this.startBeating();
    try {
      const channel = new BroadcastChannel(THREADS_CHANNEL);
      channel.onmessage = (event) => this.#onMessage((event as { data?: ThreadsMessage }).data);
      // After the listener: the worker must be free to exit with its watchdog running.
      channel.unref();
      this.#channel = channel;
      this.#announce();
    } catch (error) {
      this.warn('the watchdog thread cannot be reached; worker stalls are timed without stacks', 'LOOPSIGHT_THREADS', 'watchdog', error);
    }
    process.once('exit', this.#onExit);
  }

  async stop(): Promise<void> {
    if (this.mode === 'stopped') return;
    this.mode = 'stopped';
    process.off('exit', this.#onExit);
    this.#onExit();
    this.stopBeating();
  }

  /** Reports the stalls still waiting for the watchdog thread's stack: it is gone, or this thread is. */
  #flush(): void {
    const waiting = [...this.#unclaimed.values()];
    this.#unclaimed.clear();
    for (const { report, timer } of waiting) {
      clearTimeout(timer);
      this.#emit(report);
    }
  }

  /** The watchdog thread forgets this worker: on stop(), and when the worker exits on its own. */
  readonly #onExit = () => {
    this.#flush();
    const channel = this.#channel;
    this.#channel = undefined;
    if (!channel) return;
    try {
      channel.postMessage({ type: 'unwatch', threadId } satisfies ThreadsMessage);
      channel.close();
    } catch {
      // Exiting: nothing left to tell.
    }
  };

  #announce(): void {
    const beats = this.beats;
    if (!beats || !this.#channel) return;
    const request: WatchRequest = {
      type: 'watch',
      threadId,
      heartbeat: beats.buffer as SharedArrayBuffer,
      thresholdMs: this.options.thresholdMs,
      heartbeatMs: this.heartbeatMs,
      captureStacks: this.captureStacks,
      maxStacksPerMinute: this.options.maxStacksPerMinute ?? LOOP_LAG_DEFAULTS.maxStacksPerMinute,
      latePauseMs: latePauseMsFor(this.options.thresholdMs),
      scopeExpression: scopeExpression(this.key),
      maxFrames: MAX_FRAMES,
      ...this.#capture,
    };
    this.#channel.postMessage(request);
  }

  #onMessage(message: ThreadsMessage | undefined): void {
    if (this.mode === 'stopped' || !message) return;
    switch (message.type) {
      case 'hello':
        this.#announce();
        return;
      case 'bye':
        this.mode = 'main-thread';
        this.stacks = false;
        this.#flush();
        return;
      case 'watching':
        if (message.to !== threadId) return;
        this.mode = 'worker';
        this.stacks = message.stacks;
        return;
      case 'error':
        if (message.to === threadId) this.threadProblem(message.problem, message.message);
        return;
      case 'stall':
        if (message.to === threadId) this.#claimed(message);
    }
  }

  protected beat(): void {
    const beats = this.beats;
    if (!beats) return;
    const now = monotonicMs();
    const gap = Math.round(now - this.lastBeat);
    this.lastBeat = now;
    const lateMs = gap - this.beatEveryMs;
    // Before the sequence moves on: the watchdog thread reports this stall once it sees it move.
    if (lateMs >= this.options.thresholdMs) this.#timed(Atomics.load(beats, SLOT.seq), timedReport(lateMs, Date.now() - gap, now - gap));
    if (gap > Atomics.load(beats, SLOT.gap)) Atomics.store(beats, SLOT.gap, gap);
    Atomics.store(beats, SLOT.ms, int32Ms(now));
    Atomics.add(beats, SLOT.seq, 1);
  }

  /** A stall this thread timed: reported as is unless the watchdog thread's report of it comes first. */
  #timed(seq: number, report: WatchdogStallReport<S>): void {
    if (this.mode !== 'worker') {
      this.#emit(report);
      return;
    }
    const timer = setTimeout(() => {
      this.#unclaimed.delete(seq);
      this.#emit(report);
    }, CLAIM_MS).unref();
    this.#unclaimed.set(seq, { report, timer });
  }

  #claimed(message: StallMessage): void {
    const waiting = this.#unclaimed.get(message.seq);
    if (waiting) {
      clearTimeout(waiting.timer);
      this.#unclaimed.delete(message.seq);
      this.#claimedSeq = message.seq;
    } else if (message.seq !== this.#claimedSeq) {
      // Already reported without its stack (or not a stall this thread saw): once only.
      return;
    }
    const { type, to, seq, ...captured } = message;
    this.#emit(this.reportOf(captured));
  }

  #emit(report: WatchdogStallReport<S>): void {
    this.stalls++;
    report.durationMs = Math.round(report.durationMs * 10) / 10;
    report.thread = { id: threadId, name: threadName() };
    const options = this.options;
    try {
      if (report.inflight === 0) report.inflight = options.inflight();
      if (!report.request && !report.candidates) {
        const candidates = this.candidates();
        if (candidates.length > 0) report.candidates = candidates;
      }
      options.onStall(report);
    } catch (error) {
      this.warn('a stall report could not be delivered', 'LOOPSIGHT_CALLBACK_THREW', 'onStall', error);
    }
  }
}
