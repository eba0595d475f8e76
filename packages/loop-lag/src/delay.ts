import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';

const NS_PER_MS = 1e6;

/** Records how late the event loop runs, and hands out the samples interval by interval. */
export interface LoopDelayRecorder {
  readonly resolutionMs: number;
  start(): void;
  stop(): void;
  /**
   * The samples (ns, each the whole interval between two ticks, like monitorEventLoopDelay's) since
   * start() or the previous take(); recording goes on into another histogram. Read it before the
   * next take(), which reuses it.
   */
  take(): RecordableHistogram;
  /** The samples of the interval in progress, without ending it. */
  current(): RecordableHistogram;
}

/**
 * A timer that records the time between its ticks, as monitorEventLoopDelay does, but keeps the
 * previous tick's time itself. `IntervalHistogram#reset()` also forgets that time, so a stall that
 * ends just before a reader resets the histogram is never recorded: its sample is taken by the
 * next tick, which then has nothing to measure from (seen as a 300 ms block missing from its window
 * whenever the window's timer ran first). Here a reader swaps histograms and no sample is lost.
 */
class Recorder implements LoopDelayRecorder {
  readonly resolutionMs: number;
  #current = createHistogram();
  #spare = createHistogram();
  #timer: NodeJS.Timeout | undefined;
  #previous = 0;

  constructor(resolutionMs: number) {
    this.resolutionMs = resolutionMs;
  }

  start(): void {
    if (this.#timer) return;
    this.#previous = performance.now();
    this.#timer = setInterval(() => this.#tick(), this.resolutionMs).unref();
  }

  stop(): void {
    if (!this.#timer) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#current.reset();
    this.#spare.reset();
  }

  take(): RecordableHistogram {
    const taken = this.#current;
    this.#spare.reset();
    this.#current = this.#spare;
    this.#spare = taken;
    return taken;
  }

  current(): RecordableHistogram {
    return this.#current;
  }

  #tick(): void {
    const now = performance.now();
    this.#current.record(Math.max(1, Math.round((now - this.#previous) * NS_PER_MS)));
    this.#previous = now;
  }
}

/** A loop delay recorder ticking every `resolutionMs` on an unref'd timer. */
export function createLoopDelayRecorder(resolutionMs: number): LoopDelayRecorder {
  if (!Number.isInteger(resolutionMs) || resolutionMs < 1) {
    throw new TypeError(`resolutionMs must be a positive integer (ms), got ${String(resolutionMs)}`);
  }
  return new Recorder(resolutionMs);
}
