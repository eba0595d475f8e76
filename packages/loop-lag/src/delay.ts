import { createHistogram, type Histogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { RESOLUTION_MS } from './options.js';
import { type Driver, drive, stopDriving, tick } from './ticks.js';

/** perf_hooks histograms record nanoseconds. */
export const NS_PER_MS = 1e6;

/**
 * How late a delay sample ran beyond the interval that was asked for, ms. A sample is a timer's
 * whole interval (as monitorEventLoopDelay's), so an idle loop at 10 ms reads ≈ 10.2 ms raw and
 * close to 0 here.
 */
export function beyondMs(ns: number, resolutionMs: number): number {
  return Math.max(0, ns / NS_PER_MS - resolutionMs);
}

/** A histogram's percentile steps (0, 50, 75, 87.5, …, 100), each with the highest sample below it, lowest first. */
export function percentileSteps(h: Pick<Histogram, 'percentiles'>): [percentile: number, ns: number][] {
  return [...h.percentiles].sort((a, b) => a[0] - b[0]);
}

/** One reader's share of a recorder's samples: every interval from when it was opened, handed out take by take. */
export interface LoopDelayReader {
  /** The recorder's timer interval, ms: samples are whole intervals, so subtract it (`beyondMs`). */
  readonly resolutionMs: number;
  /**
   * The samples (ns) since open() or the previous take(); recording goes on into another
   * histogram. Read it before the next take(), which reuses it.
   */
  take(): RecordableHistogram;
  /** The samples of the interval in progress, without ending it. */
  current(): RecordableHistogram;
  /** Stops this reader (idempotent); the recorder's timer stops with its last reader. */
  close(): void;
}

/**
 * One timer that records how late the event loop runs, for any number of readers: a process needs
 * one per resolution, however many parts read the delay (core's sampler, the overload guard).
 */
export interface LoopDelayRecorder {
  readonly resolutionMs: number;
  /** Readers open now: the timer runs while there is at least one. */
  readonly readers: number;
  /** A new reader; the first one starts the timer. */
  open(): LoopDelayReader;
}

class Reader implements LoopDelayReader {
  readonly resolutionMs: number;
  #current = createHistogram();
  #spare = createHistogram();
  #close: ((reader: Reader) => void) | undefined;

  constructor(resolutionMs: number, close: (reader: Reader) => void) {
    this.resolutionMs = resolutionMs;
    this.#close = close;
  }

  record(ns: number): void {
    this.#current.record(ns);
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

  close(): void {
    const close = this.#close;
    if (!close) return;
    this.#close = undefined;
    this.#current.reset();
    this.#spare.reset();
    close(this);
  }
}

/**
 * A timer that records the time between its ticks, as monitorEventLoopDelay does, but keeps the
 * previous tick's time itself. `IntervalHistogram#reset()` also forgets that time, so a stall that
 * ends just before a reader resets the histogram is never recorded: its sample is taken by the
 * next tick, which then has nothing to measure from (seen as a 300 ms block missing from its window
 * whenever the window's timer ran first). Here each reader swaps its own histograms and no sample is
 * lost, whoever reads first.
 */
class Recorder implements LoopDelayRecorder {
  readonly resolutionMs: number;
  readonly #readers = new Set<Reader>();
  #timer: NodeJS.Timeout | undefined;
  #driver: Driver | undefined;
  #previous = 0;

  constructor(resolutionMs: number) {
    this.resolutionMs = resolutionMs;
  }

  get readers(): number {
    return this.#readers.size;
  }

  open(): LoopDelayReader {
    const reader = new Reader(this.resolutionMs, (r) => this.#remove(r));
    this.#readers.add(reader);
    if (!this.#timer) {
      this.#previous = performance.now();
      this.#timer = setInterval(() => this.#tick(), this.resolutionMs).unref();
      this.#driver = drive(this.resolutionMs);
    }
    return reader;
  }

  #remove(reader: Reader): void {
    this.#readers.delete(reader);
    if (this.#readers.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#driver) stopDriving(this.#driver);
    this.#driver = undefined;
  }

  #tick(): void {
    const now = performance.now();
    const ns = Math.max(1, Math.round((now - this.#previous) * NS_PER_MS));
    this.#previous = now;
    for (const reader of this.#readers) reader.record(ns);
    // The heartbeat rides on this tick when it fits (ticks.ts): one wake-up instead of two.
    if (this.#driver) tick(this.#driver);
  }
}

/**
 * A loop delay recorder ticking every `resolutionMs` (an integer from 1 to 1000) on an unref'd
 * timer, while it has readers.
 *
 * @example
 * const reader = createLoopDelayRecorder(10).open();
 * setInterval(() => console.log(reader.take().percentile(99) / NS_PER_MS), 1_000).unref();
 */
export function createLoopDelayRecorder(resolutionMs: number): LoopDelayRecorder {
  RESOLUTION_MS.resolve(resolutionMs, 'resolutionMs');
  return new Recorder(resolutionMs);
}
