// Options and helpers shared by the variants of several frameworks.
import { performance } from 'node:perf_hooks';
import { createLoopDelayRecorder, LOOP_LAG_DEFAULTS } from '@loopsight/loop-lag';
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/**
 * The sampled promise tracker with the duty cycle of its defaults (a 1 s window every 30 s) scaled
 * down 30×: a 33 ms window every 1 s. With the defaults, a 1 s measured run holds a window in about
 * one round of 30, so a median over rounds would show the cost between windows only; scaled, every
 * run holds one window and its drain, so the figure is the cost averaged over time (slightly more:
 * 30× as many window openings and drains).
 */
export const PROMISES_SAMPLED_SCALED = Object.freeze({ mode: 'sampled', sampleWindowMs: 33, sampleIntervalMs: 1000 });

/**
 * The prom-client peer: collectDefaultMetrics() and the per-request histogram its README shows
 * (method, route, status code; seconds), in a registry of its own. Returns the histogram.
 */
export function promClientMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route', 'status_code'],
    registers: [registry],
  });
}

/**
 * Under `instructions.mjs` (valgrind, ≈ 50× slower) the stall watchdog and the loop delay sampler,
 * whose work is per second, would be counted against a few hundred requests a second, and their
 * stall detection would fire on valgrind's own pauses: there they are off, and their cost is
 * measured per second instead (micro/idle.mjs). Elsewhere the options are the variant's own.
 */
export function benchOptions(options) {
  return process.env.LOOPSIGHT_BENCH_REQUEST_PATH === '1' ? { ...options, loopLag: false } : options;
}

/**
 * The loop delay sampler of loopsight's defaults without the stall watchdog, for the
 * `defaults-no-watchdog` variants: `loopLag` has no option that turns the watchdog thread off and
 * keeps the sampler, so this is `loopLag: false` plus what core's sampler runs (a delay recorder at
 * the default resolution and a window rotated every 10 s, event loop utilization read at each).
 */
export function standaloneLoopSampler() {
  const reader = createLoopDelayRecorder(LOOP_LAG_DEFAULTS.resolutionMs).open();
  let elu = performance.eventLoopUtilization();
  setInterval(() => {
    const h = reader.take();
    globalThis.__benchLoopWindow = { p99: h.percentile(99), elu: performance.eventLoopUtilization(elu).utilization };
    elu = performance.eventLoopUtilization();
  }, 10_000).unref();
}
