import { type EventLoopUtilization, type IntervalHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { LoopStats } from './types.js';

const NS_PER_MS = 1e6;

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
    h.reset();
    this.#windowStart = performance.now();
    this.#eluStart = performance.eventLoopUtilization();
  }

  #read(): LoopStats {
    const h = this.#histogram as IntervalHistogram;
    const windowMs = Math.round(performance.now() - this.#windowStart);
    const utilization = this.#eluStart ? performance.eventLoopUtilization(this.#eluStart).utilization : 0;
    if (h.count === 0) return Object.freeze({ ...EMPTY_STATS, utilization, windowMs });
    const beyond = (ns: number) => Math.max(0, ns / NS_PER_MS - this.#resolutionMs);
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
