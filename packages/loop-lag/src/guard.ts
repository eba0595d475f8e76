import { type EventLoopUtilization, type Histogram, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { createLoopDelayRecorder, type LoopDelayRecorder } from './delay.js';
import type { GuardOptions, GuardState, OverloadGuard, ShedReason } from './types.js';

const RESOLUTION_MS = 10;
const NS_PER_MS = 1e6;
/** Leave the overloaded state only once every signal is below this share of its limit... */
const RECOVER_BELOW = 0.8;
/** ...for this many samples in a row: a single quiet sample between two busy ones is not recovery. */
const RECOVER_SAMPLES = 2;

const beyond = (ns: number) => Math.max(0, ns / NS_PER_MS - RESOLUTION_MS);

/**
 * How late the loop ran over the interval: the 90th percentile of the delay samples, or their
 * time-weighted mean if higher. A saturated loop that runs fifty short requests and one 500 ms turn
 * records one long sample among many short ones, so the percentiles of the samples stay low
 * (measured: p90 13–36 ms while 500 ms stalls were reported); weighted by the time each sample
 * stands for, that turn dominates. A single GC pause does not (≈ 20 ms for 100 ms in 500 ms).
 */
function loopDelay(h: Histogram): number {
  let previous = 0;
  let weighted = 0;
  let total = 0;
  // Percentile steps (0, 50, 75, …, 100), each with the highest delay of the samples below it.
  for (const [percentile, ns] of [...h.percentiles].sort((a, b) => a[0] - b[0])) {
    const share = percentile - previous;
    previous = percentile;
    if (share <= 0) continue;
    const delay = beyond(ns);
    const wall = RESOLUTION_MS + delay;
    weighted += share * delay * wall;
    total += share * wall;
  }
  return Math.max(beyond(h.percentile(90)), total > 0 ? weighted / total : 0);
}

/**
 * Decides, from signals sampled on an unref'd timer (never per request), whether the process is
 * overloaded: the loop's delay (p90 or time-weighted mean over the last sample interval), its utilization
 * over the same interval, and the V8 heap in use. It enters the overloaded state as soon as one
 * signal passes its limit, and leaves it only when all are well below (hysteresis), so that
 * shedding does not flap.
 */
export class Guard implements OverloadGuard {
  readonly #options: GuardOptions;
  #recorder: LoopDelayRecorder | undefined;
  #timer: NodeJS.Timeout | undefined;
  #elu: EventLoopUtilization | undefined;
  #reasons: ShedReason[] = [];
  #quietSamples = 0;
  #signals = { eventLoopDelayMs: 0, eventLoopUtilization: 0, heapUsedBytes: 0 };

  constructor(options: GuardOptions) {
    this.#options = options;
  }

  /** The first reason the process is overloaded now, or undefined. One property read: safe per request. */
  get overloaded(): ShedReason | undefined {
    return this.#reasons[0];
  }

  start(): void {
    if (this.#timer) return;
    this.#recorder = createLoopDelayRecorder(RESOLUTION_MS);
    this.#recorder.start();
    this.#elu = performance.eventLoopUtilization();
    this.#timer = setInterval(() => this.#sample(), this.#options.sampleIntervalMs).unref();
  }

  stop(): void {
    if (!this.#timer) return;
    clearInterval(this.#timer);
    this.#recorder?.stop();
    this.#timer = undefined;
    this.#recorder = undefined;
    this.#reasons = [];
    this.#quietSamples = 0;
  }

  state(): GuardState {
    return { status: this.#reasons.length > 0 ? 'overloaded' : 'ok', reasons: [...this.#reasons], signals: { ...this.#signals } };
  }

  #sample(): void {
    const o = this.#options;
    const h = this.#recorder?.take();
    if (!h) return;
    const delayMs = h.count > 0 ? loopDelay(h) : 0;
    const utilization = performance.eventLoopUtilization(this.#elu).utilization;
    this.#elu = performance.eventLoopUtilization();
    const heapUsed = o.maxHeapUsedBytes === undefined ? 0 : getHeapStatistics().used_heap_size;
    this.#signals = { eventLoopDelayMs: delayMs, eventLoopUtilization: utilization, heapUsedBytes: heapUsed };

    const over: ShedReason[] = [];
    let quiet = true;
    const check = (reason: ShedReason, value: number, limit: number | undefined) => {
      if (limit === undefined) return;
      if (value > limit) over.push(reason);
      if (value > limit * RECOVER_BELOW) quiet = false;
    };
    check('event_loop_delay', delayMs, o.maxEventLoopDelayMs);
    check('event_loop_utilization', utilization, o.maxEventLoopUtilization);
    check('heap_used', heapUsed, o.maxHeapUsedBytes);

    const was = this.#reasons.length > 0;
    if (over.length > 0) {
      this.#reasons = over;
      this.#quietSamples = 0;
    } else if (was) {
      this.#quietSamples = quiet ? this.#quietSamples + 1 : 0;
      if (this.#quietSamples >= RECOVER_SAMPLES) this.#reasons = [];
    }
    const is = this.#reasons.length > 0;
    if (was !== is) o.onChange?.(this.state());
  }
}

/**
 * The overload guard behind the adapters' `shed` option; usable alone:
 *
 * @example
 * const guard = createOverloadGuard({ maxEventLoopDelayMs: 100, sampleIntervalMs: 500 });
 * guard.start();
 * server.on('request', (req, res) => { if (guard.overloaded) { res.writeHead(503).end(); return; } … });
 */
export function createOverloadGuard(options: GuardOptions): OverloadGuard {
  return new Guard(options);
}
