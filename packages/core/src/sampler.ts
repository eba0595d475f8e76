import { type EventLoopUtilization, type Histogram, performance } from 'node:perf_hooks';
import type { LoopDelayReader, LoopDelayRecorder } from '@loopsight/loop-lag';
import { beyondMs, NS_PER_MS, percentileSteps } from '@loopsight/loop-lag/kit';
import type { LoopDelayHistogram, LoopStats } from './types.js';

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
 * Loop delay and utilization over fixed windows, read from the process's delay recorder at the
 * configured resolution (which the overload guard shares at the default one).
 *
 * Delay samples are a timer's whole interval (as monitorEventLoopDelay's), so an idle loop at the default 10 ms
 * resolution reads p50 ≈ 10.2 ms. Every figure here has the resolution taken off: it is the delay
 * beyond what was asked for, and an idle loop reads close to 0.
 *
 * Readers get the last complete window, so any number of them (exporters, health checks) read the
 * same figures and none resets the data under another.
 */
export class LoopSampler {
  readonly #recorder: LoopDelayRecorder;
  readonly #resolutionMs: number;
  readonly #windowMs: number;
  #delay: LoopDelayReader | undefined;
  #timer: NodeJS.Timeout | undefined;
  #windowStart = 0;
  #eluStart: EventLoopUtilization | undefined;
  #last: LoopStats | undefined;
  // Cumulative since start(), folded in at each window's end: monotonic for every reader.
  #bucketCounts = DELAY_BUCKETS_MS.map(() => 0);
  #count = 0;
  #sumMs = 0;

  constructor(recorder: LoopDelayRecorder, windowMs: number) {
    this.#recorder = recorder;
    this.#resolutionMs = recorder.resolutionMs;
    this.#windowMs = windowMs;
  }

  start(): void {
    if (this.#delay) return;
    this.#delay = this.#recorder.open();
    this.#windowStart = performance.now();
    this.#eluStart = performance.eventLoopUtilization();
    this.#timer = setInterval(() => this.#rotate(), this.#windowMs).unref();
  }

  stop(): void {
    if (!this.#delay) return;
    clearInterval(this.#timer);
    this.#delay.close();
    this.#delay = undefined;
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
    return this.#delay ? this.#read(this.#delay.current()) : EMPTY_STATS;
  }

  #rotate(): void {
    const h = this.#delay?.take();
    if (!h) return;
    this.#last = this.#read(h);
    this.#fold(h);
    this.#windowStart = performance.now();
    this.#eluStart = performance.eventLoopUtilization();
  }

  #fold(h: Histogram): void {
    if (h.count === 0) return;
    const inBuckets = delayBucketCounts(h, this.#resolutionMs);
    for (let i = 0; i < inBuckets.length; i++) this.#bucketCounts[i] = (this.#bucketCounts[i] as number) + (inBuckets[i] as number);
    this.#count += h.count;
    this.#sumMs += beyondMs(h.mean, this.#resolutionMs) * h.count;
  }

  #read(h: Histogram): LoopStats {
    const windowMs = Math.round(performance.now() - this.#windowStart);
    const utilization = this.#eluStart ? performance.eventLoopUtilization(this.#eluStart).utilization : 0;
    if (h.count === 0) return Object.freeze({ ...EMPTY_STATS, utilization, windowMs });
    const beyond = (ns: number) => beyondMs(ns, this.#resolutionMs);
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

/**
 * How many of a histogram's samples fall at or under each of DELAY_BUCKETS_MS (cumulative), the
 * resolution taken off. Read from the HDR histogram's percentile steps: exact at the extremes, within
 * one step in the body.
 */
export function delayBucketCounts(h: Pick<Histogram, 'count' | 'min' | 'max' | 'percentiles'>, resolutionMs: number): number[] {
  const n = h.count;
  const steps = percentileSteps(h);
  const maxMs = beyondMs(h.max, resolutionMs);
  const minMs = beyondMs(h.min, resolutionMs);
  return DELAY_BUCKETS_MS.map((bound) => {
    if (n === 0 || minMs > bound) return 0;
    if (maxMs <= bound) return n;
    let share = 0;
    for (const [percentile, ns] of steps) {
      if (beyondMs(ns, resolutionMs) > bound) break;
      share = percentile / 100;
    }
    return Math.min(Math.round(n * share), n - 1);
  });
}
