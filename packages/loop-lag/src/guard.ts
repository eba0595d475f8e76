import { constants, type EventLoopUtilization, type Histogram, PerformanceObserver, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { beyondMs, createLoopDelayRecorder, type LoopDelayReader, percentileSteps } from './delay.js';
import { checkGuardOptions, LOOP_LAG_DEFAULTS } from './options.js';
import type { GuardOptions, GuardState, OverloadGuard, ShedReason } from './types.js';

/** Leave the overloaded state only once every signal is below this share of its limit... */
const RECOVER_BELOW = 0.8;
/** ...for this many samples in a row: a single quiet sample between two busy ones is not recovery. */
const RECOVER_SAMPLES = 2;
/**
 * After this many samples in a row overloaded, one request in PROBE_EVERY is let through. Shedding
 * is meant to let the signal fall; when it does not (the load is not the requests', or the signal
 * cannot move without work), refusing everything forever is worse than serving a trickle.
 */
const PROBE_AFTER_SAMPLES = 10;
const PROBE_EVERY = 10;
/**
 * A heap reading taken after a major GC stands for this many samples. A process that sheds
 * allocates little, so V8 may not collect again for minutes: without an expiry a reading above the
 * limit would keep the guard shedding although the live heap may have shrunk since. A process whose
 * live heap really stays above the limit keeps collecting (and renewing the reading) once served.
 */
const HEAP_READING_SAMPLES = 20;

/**
 * How late the loop ran over the interval: the 90th percentile of the delay samples, or their
 * time-weighted mean if higher. A saturated loop that runs fifty short requests and one 500 ms turn
 * records one long sample among many short ones, so the percentiles of the samples stay low
 * (measured: p90 13–36 ms while 500 ms stalls were reported); weighted by the time each sample
 * stands for, that turn dominates. A single GC pause does not (≈ 20 ms for 100 ms in 500 ms).
 */
function delaySignal(h: Histogram, resolutionMs: number): number {
  let previous = 0;
  let weighted = 0;
  let total = 0;
  for (const [percentile, ns] of percentileSteps(h)) {
    const share = percentile - previous;
    previous = percentile;
    if (share <= 0) continue;
    const delay = beyondMs(ns, resolutionMs);
    const wall = resolutionMs + delay;
    weighted += share * delay * wall;
    total += share * wall;
  }
  return Math.max(beyondMs(h.percentile(90), resolutionMs), total > 0 ? weighted / total : 0);
}

/**
 * Decides, from signals sampled on an unref'd timer (never per request), whether the process is
 * overloaded: the loop's delay (p90 or time-weighted mean over the last sample interval), its utilization
 * over the same interval, and the V8 heap that survived the last major GC. It enters the overloaded
 * state as soon as one signal passes its limit, and leaves it only when the loop signals are well
 * below (hysteresis) and the heap reading is under its limit or expired, so that shedding neither
 * flaps nor latches. Past a bounded time overloaded it lets a fraction of requests through.
 */
class Guard implements OverloadGuard {
  readonly #options: GuardOptions;
  #delay: LoopDelayReader | undefined;
  #timer: NodeJS.Timeout | undefined;
  #elu: EventLoopUtilization | undefined;
  #reasons: ShedReason[] = [];
  #quietSamples = 0;
  #overSamples = 0;
  #probing = false;
  #probeCount = 0;
  #gc: PerformanceObserver | undefined;
  #heapAfterGc = 0;
  #heapAge = Number.POSITIVE_INFINITY;
  #signals = { eventLoopDelayMs: 0, eventLoopUtilization: 0, heapUsedBytes: 0 };

  constructor(options: GuardOptions) {
    this.#options = options;
  }

  /**
   * The first reason to shed this request, or undefined. Read once per request: while probing, every
   * PROBE_EVERY-th read answers undefined, so the decision stays one property read (and, only while
   * overloaded, a counter).
   */
  get overloaded(): ShedReason | undefined {
    const reason = this.#reasons[0];
    if (reason === undefined || !this.#probing) return reason;
    if (++this.#probeCount < PROBE_EVERY) return reason;
    this.#probeCount = 0;
    return undefined;
  }

  start(): void {
    if (this.#timer) return;
    this.#elu = performance.eventLoopUtilization();
    if (this.#options.maxHeapUsedBytes !== undefined) this.#observeGc();
    // Last before the timer: a start that threw above leaves no reader keeping a shared recorder ticking.
    this.#delay = (this.#options.recorder ?? createLoopDelayRecorder(LOOP_LAG_DEFAULTS.resolutionMs)).open();
    this.#timer = setInterval(() => this.#sample(), this.#options.sampleIntervalMs).unref();
  }

  /**
   * used_heap_size counts garbage until V8 collects it, and a process that sheds allocates too
   * little to make V8 collect: read raw, the heap signal stays wherever the last burst left it. Read
   * right after a major GC it is the live heap, which only the application can make shrink.
   */
  #observeGc(): void {
    this.#gc = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        if ((entry as { detail?: { kind?: number } }).detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue;
        this.#heapAfterGc = getHeapStatistics().used_heap_size;
        this.#heapAge = 0;
        return;
      }
    });
    this.#gc.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    if (!this.#timer) return;
    clearInterval(this.#timer);
    this.#delay?.close();
    this.#gc?.disconnect();
    this.#gc = undefined;
    this.#timer = undefined;
    this.#delay = undefined;
    this.#reasons = [];
    this.#quietSamples = 0;
    this.#overSamples = 0;
    this.#probing = false;
    this.#heapAfterGc = 0;
    this.#heapAge = Number.POSITIVE_INFINITY;
  }

  state(): GuardState {
    return { status: this.#reasons.length > 0 ? 'overloaded' : 'ok', reasons: [...this.#reasons], signals: { ...this.#signals } };
  }

  #sample(): void {
    const o = this.#options;
    const delay = this.#delay;
    if (!delay) return;
    const h = delay.take();
    const delayMs = h.count > 0 ? delaySignal(h, delay.resolutionMs) : 0;
    const utilization = performance.eventLoopUtilization(this.#elu).utilization;
    this.#elu = performance.eventLoopUtilization();
    const heapUsed = this.#heapAfterGc;
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
    // No band below the heap limit: a post-GC reading does not jitter from sample to sample, and a
    // live heap parked between 80% and 100% of the limit must not hold the guard shed forever.
    if (o.maxHeapUsedBytes !== undefined && this.#heapAge++ < HEAP_READING_SAMPLES && heapUsed > o.maxHeapUsedBytes) {
      over.push('heap_used');
    }

    const was = this.#reasons.length > 0;
    if (over.length > 0) {
      this.#reasons = over;
      this.#quietSamples = 0;
    } else if (was) {
      this.#quietSamples = quiet ? this.#quietSamples + 1 : 0;
      if (this.#quietSamples >= RECOVER_SAMPLES) this.#reasons = [];
    }
    const is = this.#reasons.length > 0;
    this.#overSamples = is ? this.#overSamples + 1 : 0;
    this.#probing = this.#overSamples > PROBE_AFTER_SAMPLES;
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
  checkGuardOptions(options);
  return new Guard(options);
}
