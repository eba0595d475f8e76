import { type EventLoopUtilization, type IntervalHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { LoopDelayHistogram, LoopStats } from './types.js';

const NS_PER_MS = 1e6;

/** Upper bounds of the cumulative delay buckets, ms: 1 ms to 10 s, as Prometheus' `le` values. */
export const DELAY_BUCKETS_MS: readonly number[] = Object.freeze([1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]);

/** What loopStats() reads before the sampler runs, or with loopLag: false. */
export const EMPTY_STATS: LoopStats = Object.freeze({
  min: 0,
  max: 0,
  mean: 0,
  stddev: 0,
  p50: 0,
  p90: 0,
  p99: 0,
  utilization: 0,
  count: 0,
  windowMs: 0,
});

/**
 * Loop delay (monitorEventLoopDelay) and utilization over fixed windows.
 *
 * monitorEventLoopDelay's samples are the timer's whole interval, so an idle loop at the default 10 ms
 * resolution reads p50 ≈ 10.2 ms. Every figure here has the resolution taken off: it is the delay
 * beyond what was asked for, and an idle loop reads close to 0.
 *
 * Readers get the last complete window, so any number of them (exporters, health checks) read the
 * same figures and none resets the data under another.
 */
export class LoopSampler {
  readonly #resolutionMs: number;
  readonly #windowMs: number;
  #histogram: IntervalHistogram | undefined;
  #timer: NodeJS.Timeout | undefined;
  #windowStart = 0;
  #eluStart: EventLoopUtilization | undefined;
  #last: LoopStats | undefined;
  // Cumulative since start(), folded in at each window's end: monotonic for every reader.
  #bucketCounts = DELAY_BUCKETS_MS.map(() => 0);
  #count = 0;
  #sumMs = 0;

  constructor(resolutionMs: number, windowMs: number) {
    this.#resolutionMs = resolutionMs;
    this.#windowMs = windowMs;
  }

  start(): void {
    if (this.#histogram) return;
    this.#histogram = monitorEventLoopDelay({ resolution: this.#resolutionMs });
    this.#histogram.enable();
    this.#windowStart = performance.now();
    this.#eluStart = performance.eventLoopUtilization();
    this.#timer = setInterval(() => this.#rotate(), this.#windowMs).unref();
  }

  stop(): void {
    if (!this.#histogram) return;
    clearInterval(this.#timer);
    this.#histogram.disable();
    this.#histogram = undefined;
    this.#timer = undefined;
    this.#last = undefined;
    this.#bucketCounts = DELAY_BUCKETS_MS.map(() => 0);
    this.#count = 0;
    this.#sumMs = 0;
  }

  /**
   * Every delay sample since start(), bucketed (cumulative counts per upper bound, as Prometheus
   * histograms are), up to the last complete window. Bucket counts come from the HDR histogram's
   * percentile steps, so they are exact at the tail and within one step in the body.
   */
  histogram(): LoopDelayHistogram {
    return { boundsMs: DELAY_BUCKETS_MS, counts: [...this.#bucketCounts], count: this.#count, sumMs: this.#sumMs };
  }

  /** Stats of the last complete window; before the first window completes, of the time so far. */
  stats(): LoopStats {
    if (this.#last) return this.#last;
    return this.#histogram ? this.#read() : EMPTY_STATS;
  }

  #rotate(): void {
    const h = this.#histogram;
    if (!h) return;
    this.#last = this.#read();
    this.#fold(h);
    h.reset();
    this.#windowStart = performance.now();
    this.#eluStart = performance.eventLoopUtilization();
  }

  #fold(h: IntervalHistogram): void {
    const n = h.count;
    if (n === 0) return;
    // Percentile steps (0, 50, 75, 87.5, …, 100) with the delay at each, lowest first.
    const steps = [...h.percentiles].sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < DELAY_BUCKETS_MS.length; i++) {
      const bound = DELAY_BUCKETS_MS[i] as number;
      let share = 0;
      for (const [percentile, ns] of steps) {
        if (this.#beyond(ns) > bound) break;
        share = percentile / 100;
      }
      this.#bucketCounts[i] = (this.#bucketCounts[i] as number) + Math.round(n * share);
    }
    this.#count += n;
    this.#sumMs += this.#beyond(h.mean) * n;
  }

  #beyond(ns: number): number {
    return Math.max(0, ns / NS_PER_MS - this.#resolutionMs);
  }

  #read(): LoopStats {
    const h = this.#histogram as IntervalHistogram;
    const windowMs = Math.round(performance.now() - this.#windowStart);
    const utilization = this.#eluStart ? performance.eventLoopUtilization(this.#eluStart).utilization : 0;
    if (h.count === 0) return Object.freeze({ ...EMPTY_STATS, utilization, windowMs });
    const beyond = (ns: number) => this.#beyond(ns);
    return Object.freeze({
      min: beyond(h.min),
      max: beyond(h.max),
      mean: beyond(h.mean),
      stddev: h.stddev / NS_PER_MS,
      p50: beyond(h.percentile(50)),
      p90: beyond(h.percentile(90)),
      p99: beyond(h.percentile(99)),
      utilization,
      count: h.count,
      windowMs,
    });
  }
}
