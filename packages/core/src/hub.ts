import { isMainThread } from 'node:worker_threads';
import {
  createLoopDelayRecorder,
  createOverloadGuard,
  createStallWatchdog,
  type GuardOptions,
  LOOP_LAG_DEFAULTS,
  type LoopDelayRecorder,
  type OverloadGuard,
  type StallWatchdog,
  type WatchdogStallReport,
} from '@loopsight/loop-lag';
import { LoopsightError, warning } from '@loopsight/options';
import { createPromiseTracker, type PromiseTracker, type TrackedPromiseReport } from '@loopsight/promises';
import { isApplicationUrl } from './culprit.js';
import { LoopSampler } from './sampler.js';
import { scopeStore } from './store.js';
import { emptyFeed, type ThreadFeed, ThreadRegistry, ThreadReporter } from './thread-feed.js';
import type { PromiseReport, RequestScope, ResolvedLoopLag, ResolvedOptions, ResolvedPromises, StallReport } from './types.js';

/**
 * What the hub needs of a monitor. Kept small and structural: the ESM and CJS builds each have a
 * Monitor class, and one hub serves both.
 */
export interface Member {
  readonly options: ResolvedOptions;
  /** Whether its promises.frameFilter is loopsight's default (each build has its own function). */
  readonly defaultFrameFilter: boolean;
  /** The scopes this monitor has in flight (live view, not a copy). */
  inflight(): { readonly size: number } & Iterable<RequestScope>;
  /** Hands a report to the monitor's listeners, channels and onReport. */
  deliver(report: StallReport | PromiseReport): void;
  reportError(what: string, error: unknown): void;
}

/** What a monitor gets when it joins: the shared parts it reads from directly. */
export interface Parts {
  readonly id: number;
  readonly sampler: LoopSampler | undefined;
  readonly guard: OverloadGuard | undefined;
}

interface Slot {
  readonly id: number;
  readonly ref: WeakRef<Member>;
  /** Set for monitors the user created: held until stop(). Adapter-made monitors go with their app. */
  readonly strong: Member | undefined;
  readonly loopLag: ResolvedLoopLag | false;
  readonly promises: ResolvedPromises | false;
  readonly samplerKey: string | undefined;
  readonly guardKey: string | undefined;
  readonly configKey: string;
}

/** The options the watchdog and the tracker are reconciled from; usually one entry for all monitors. */
interface PartsConfig {
  readonly loopLag: ResolvedLoopLag | false;
  readonly promises: ResolvedPromises | false;
  /** 0 for the default frame filter, else an id per function. */
  readonly filterId: number;
}

interface Counted<T> {
  readonly part: T;
  refs: number;
}

/** A scope as the watchdog serializes it on the paused thread: with the id of its monitor's slot. */
interface Tagged {
  readonly s: RequestScope;
  readonly m: number | undefined;
}

type WatchdogConfig = Pick<ResolvedLoopLag, 'stallThresholdMs' | 'captureStacks' | 'maxStacksPerMinute' | 'profiler' | 'capture'>;
type TrackerConfig = { -readonly [K in keyof Omit<ResolvedPromises, 'mode'>]: ResolvedPromises[K] } & { mode: 'sampled' | 'full' };

/** Stands for `false` options in the config key cache. */
const NONE = Object.freeze({});

/** How long the watchdog and the promise tracker outlive the last monitor, waiting for the next. */
const LINGER_MS = 2_000;

const promisesOn = (p: ResolvedPromises | false): p is ResolvedPromises => p !== false && p.mode !== 'off';

function sameConfig(a: object | undefined, b: object | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  return keys.every((k) => (typeof x[k] === 'object' && x[k] !== null ? JSON.stringify(x[k]) === JSON.stringify(y[k]) : x[k] === y[k]));
}

/**
 * Everything a process has once, whatever the number of monitors: the stall watchdog (one worker
 * thread), the loop delay recorder (one timer per resolution, read by the samplers and the overload
 * guards), the loop delay sampler, the promise tracker (one set of promise hooks and process
 * listeners) and the overload guard. Each part starts with the first monitor that needs it and
 * stops with the last (reference counted). Reports are routed to the monitor whose request they
 * belong to, so each is delivered once per process, never once per monitor.
 */
export class Hub {
  readonly #slots = new Map<number, Slot>();
  readonly #slotOf = new WeakMap<Member, Slot>();
  readonly #finalizer = new FinalizationRegistry<number>((id) => void this.#leave(id, true));
  /** Which slot a scope belongs to; written only while more than one monitor runs (see own()). */
  readonly #owners = new WeakMap<object, number>();
  readonly #samplers = new Map<string, Counted<LoopSampler>>();
  readonly #guards = new Map<string, Counted<OverloadGuard>>();
  /** By resolution, ms. A recorder counts its own readers (the samplers and guards above) and ticks while it has one. */
  readonly #recorders = new Map<number, LoopDelayRecorder>();
  // Distinct configurations, counted: reconciling looks at these, not at every monitor, so that a
  // thousand monitors with the same options cost one comparison.
  readonly #configs = new Map<string, Counted<PartsConfig>>();
  readonly #functionIds = new WeakMap<object, number>();
  readonly #keys = new WeakMap<object, WeakMap<object, string>>();
  #nextId = 1;
  #watchdog: StallWatchdog | undefined;
  #watchdogConfig: WatchdogConfig | undefined;
  #tracker: PromiseTracker<RequestScope> | undefined;
  #trackerConfig: TrackerConfig | undefined;
  #warnedFrameFilter = false;
  #lingering: NodeJS.Timeout | undefined;
  /** Main thread: what the worker threads report. A worker: its reporter to the main thread. */
  #threads: ThreadRegistry | ThreadReporter | undefined;

  /** The worker threads' figures, for the main thread's exporters. */
  get threads(): ThreadFeed {
    return this.#threads instanceof ThreadRegistry ? this.#threads : emptyFeed();
  }

  /** How many monitors run in this process. */
  get size(): number {
    return this.#slots.size;
  }

  /** The loop delay recorders whose timer runs now (tests: one per resolution, however many parts read it). */
  get recordersRunning(): number {
    let n = 0;
    for (const recorder of this.#recorders.values()) if (recorder.readers > 0) n++;
    return n;
  }

  /** The process's promise tracker, while one runs. */
  get tracker(): PromiseTracker<RequestScope> | undefined {
    return this.#tracker;
  }

  /** The correlation headers of the running monitors. */
  headers(): string[] {
    const names = new Set<string>();
    for (const slot of this.#slots.values()) {
      const member = slot.ref.deref();
      if (member) names.add(member.options.correlation.header);
    }
    return [...names];
  }

  join(member: Member, heldWeakly: boolean): Parts {
    const existing = this.#slotOf.get(member);
    if (existing) return this.#partsOf(existing);
    const { loopLag, promises, shed } = member.options;
    const filterId = this.#filterId(member);
    const slot: Slot = {
      id: this.#nextId++,
      ref: new WeakRef(member),
      strong: heldWeakly ? undefined : member,
      loopLag,
      promises,
      samplerKey: loopLag ? `${loopLag.resolutionMs}/${loopLag.windowMs}` : undefined,
      guardKey: shed
        ? JSON.stringify([shed.maxEventLoopDelayMs, shed.maxEventLoopUtilization, shed.maxHeapUsedBytes, shed.sampleIntervalMs])
        : undefined,
      configKey: this.#configKey(loopLag, promises, filterId),
    };
    // A configuration some running monitor has already cannot change what the parts run with.
    const known = this.#configs.has(slot.configKey) && this.#lingering === undefined;
    this.#acquire(this.#configs, slot.configKey, () => ({ loopLag, promises, filterId }));
    this.#slots.set(slot.id, slot);
    this.#slotOf.set(member, slot);
    if (heldWeakly) this.#finalizer.register(member, slot.id, slot);
    if (loopLag && slot.samplerKey !== undefined) {
      this.#acquire(this.#samplers, slot.samplerKey, () => {
        const sampler = new LoopSampler(this.#recorder(loopLag.resolutionMs), loopLag.windowMs);
        sampler.start();
        return sampler;
      });
    }
    if (shed && slot.guardKey !== undefined) {
      this.#acquire(this.#guards, slot.guardKey, () => {
        // At the default resolution, which its delay limit was tuned at: the sampler's too unless
        // loopLag.resolutionMs says otherwise, so with both on one recorder ticks, not two.
        const limits: GuardOptions = { sampleIntervalMs: shed.sampleIntervalMs, recorder: this.#recorder(LOOP_LAG_DEFAULTS.resolutionMs) };
        if (shed.maxEventLoopDelayMs !== undefined) limits.maxEventLoopDelayMs = shed.maxEventLoopDelayMs;
        if (shed.maxEventLoopUtilization !== undefined) limits.maxEventLoopUtilization = shed.maxEventLoopUtilization;
        if (shed.maxHeapUsedBytes !== undefined) limits.maxHeapUsedBytes = shed.maxHeapUsedBytes;
        const guard = createOverloadGuard(limits);
        this.#guard('the overload guard failed to start', 'guard:start', () => guard.start());
        return guard;
      });
    }
    this.#startThreads(loopLag);
    if (!known) this.#reconcile(false);
    return this.#partsOf(slot);
  }

  /**
   * Releases what the monitor held; the parts nobody needs any more stop. With `linger` (a monitor
   * an adapter made, leaving with its app) the watchdog and the tracker wait for the next monitor
   * before they stop; without, they stop now.
   */
  leave(member: Member, linger: boolean): Promise<void> {
    const slot = this.#slotOf.get(member);
    if (!slot) return Promise.resolve();
    this.#slotOf.delete(member);
    this.#finalizer.unregister(slot);
    return this.#leave(slot.id, linger);
  }

  /**
   * Records which monitor a scope belongs to. With one monitor in the process every report is
   * its own, so the common case pays nothing; a scope begun then and reported after a second
   * monitor joined still goes to the first monitor that accepts it, which is that one.
   */
  own(scope: RequestScope, parts: Parts): void {
    if (this.#slots.size <= 1) return;
    this.#owners.set(scope, parts.id);
  }

  /** JSON of the options, cached per resolved options object (the defaults are shared objects). */
  #configKey(loopLag: ResolvedLoopLag | false, promises: ResolvedPromises | false, filterId: number): string {
    const a = loopLag || NONE;
    const b = promises || NONE;
    let byPromises = this.#keys.get(a);
    if (!byPromises) {
      byPromises = new WeakMap();
      this.#keys.set(a, byPromises);
    }
    let key = byPromises.get(b);
    if (key === undefined) {
      key = JSON.stringify([loopLag, promises]);
      byPromises.set(b, key);
    }
    return `${filterId}:${key}`;
  }

  #filterId(member: Member): number {
    const { promises } = member.options;
    if (!promises || member.defaultFrameFilter) return 0;
    const id = this.#functionIds.get(promises.frameFilter) ?? this.#nextId++;
    this.#functionIds.set(promises.frameFilter, id);
    return id;
  }

  #partsOf(slot: Slot): Parts {
    return {
      id: slot.id,
      sampler: slot.samplerKey === undefined ? undefined : this.#samplers.get(slot.samplerKey)?.part,
      guard: slot.guardKey === undefined ? undefined : this.#guards.get(slot.guardKey)?.part,
    };
  }

  /** The process's delay recorder at this resolution. */
  #recorder(resolutionMs: number): LoopDelayRecorder {
    let recorder = this.#recorders.get(resolutionMs);
    if (!recorder) {
      recorder = createLoopDelayRecorder(resolutionMs);
      this.#recorders.set(resolutionMs, recorder);
    }
    return recorder;
  }

  /** Takes a reference to the part under `key`, made now if there is none (or none lingering). */
  #acquire<T>(map: Map<string, Counted<T>>, key: string, create: () => T): void {
    const counted = map.get(key);
    if (counted) counted.refs++;
    else map.set(key, { part: create(), refs: 1 });
  }

  /** Drops a reference; a part nobody holds is stopped by #sweep(), now or after the linger. */
  #release<T>(map: Map<string, Counted<T>>, key: string | undefined): void {
    if (key === undefined) return;
    const counted = map.get(key);
    if (counted) counted.refs--;
  }

  /** Stops the samplers and guards no monitor holds, and forgets the recorders nothing reads any more. */
  #sweep(): void {
    for (const [key, { part, refs }] of this.#samplers) {
      if (refs > 0) continue;
      this.#samplers.delete(key);
      part.stop();
    }
    for (const [key, { part, refs }] of this.#guards) {
      if (refs > 0) continue;
      this.#guards.delete(key);
      this.#guard('the overload guard failed to stop', 'guard:stop', () => part.stop());
    }
    for (const [resolutionMs, recorder] of this.#recorders) if (recorder.readers === 0) this.#recorders.delete(resolutionMs);
  }

  #leave(id: number, linger: boolean): Promise<void> {
    const slot = this.#slots.get(id);
    if (!slot) return Promise.resolve();
    this.#slots.delete(id);
    const config = this.#configs.get(slot.configKey);
    if (config && --config.refs === 0) this.#configs.delete(slot.configKey);
    this.#release(this.#samplers, slot.samplerKey);
    this.#release(this.#guards, slot.guardKey);
    return this.#reconcile(linger);
  }

  /**
   * Runs the watchdog and the tracker with what the running monitors ask for together (the lowest
   * stall threshold, stacks if any wants them, full promise tracking if any wants it...), restarting
   * one only when that changes. Each monitor still gets only the reports its own options ask for.
   */
  #reconcile(linger: boolean): Promise<void> {
    const watchdogConfig = this.#wantedWatchdog();
    const trackerConfig = this.#wantedTracker();
    if (linger && this.#slots.size === 0) {
      // The last monitor stopped. A test suite stops one app's monitor and starts the next one's a
      // moment later: a worker thread, the promise hooks and the sampler's histograms made and
      // dropped per test cost more than the tests (measured: 1,000 Fastify apps 4x slower; native
      // histograms made faster than GC frees them stalled the loop for 1.5 s). They go if nobody
      // joins by then.
      clearTimeout(this.#lingering);
      this.#lingering = setTimeout(() => void this.#apply(undefined, undefined), LINGER_MS).unref();
      return Promise.resolve();
    }
    clearTimeout(this.#lingering);
    this.#lingering = undefined;
    return this.#apply(watchdogConfig, trackerConfig);
  }

  #apply(watchdogConfig: WatchdogConfig | undefined, trackerConfig: TrackerConfig | undefined): Promise<void> {
    this.#lingering = undefined;
    this.#sweep();
    if (this.#slots.size === 0) {
      this.#threads?.stop();
      this.#threads = undefined;
    }
    const stops: Promise<void>[] = [];
    if (!sameConfig(watchdogConfig, this.#watchdogConfig)) {
      const old = this.#watchdog;
      this.#watchdog = undefined;
      this.#watchdogConfig = watchdogConfig;
      if (old)
        stops.push(
          old
            .stop()
            .catch((error: unknown) =>
              this.#error('the stall watchdog failed to stop', warning('LOOPSIGHT_SHARED_PART_FAILED', error, { site: 'watchdog:stop' })),
            ),
        );
      if (watchdogConfig) this.#startWatchdog(watchdogConfig);
    }
    if (!sameConfig(trackerConfig, this.#trackerConfig)) {
      const old = this.#tracker;
      this.#tracker = undefined;
      this.#trackerConfig = trackerConfig;
      if (old) this.#guard('the promise tracker failed to stop', 'tracker:stop', () => old.stop());
      if (trackerConfig) this.#startTracker(trackerConfig);
    }
    return Promise.all(stops).then(() => undefined);
  }

  #wantedWatchdog(): WatchdogConfig | undefined {
    let wanted: { -readonly [K in keyof WatchdogConfig]: WatchdogConfig[K] } | undefined;
    for (const { part } of this.#configs.values()) {
      const { loopLag } = part;
      if (!loopLag) continue;
      if (!wanted) {
        const { stallThresholdMs, captureStacks, maxStacksPerMinute, profiler, capture } = loopLag;
        wanted = { stallThresholdMs, captureStacks, maxStacksPerMinute, profiler, capture };
        continue;
      }
      // One watchdog per process: the first monitor that names a backend chooses it.
      if (wanted.capture === 'auto') wanted.capture = loopLag.capture;
      wanted.stallThresholdMs = Math.min(wanted.stallThresholdMs, loopLag.stallThresholdMs);
      wanted.captureStacks ||= loopLag.captureStacks;
      wanted.maxStacksPerMinute = Math.max(wanted.maxStacksPerMinute, loopLag.maxStacksPerMinute);
      if (loopLag.profiler && (!wanted.profiler || loopLag.profiler.intervalMs < wanted.profiler.intervalMs))
        wanted.profiler = loopLag.profiler;
    }
    return wanted;
  }

  #wantedTracker(): TrackerConfig | undefined {
    let wanted: TrackerConfig | undefined;
    let filterId = 0;
    for (const { part } of this.#configs.values()) {
      const { promises } = part;
      if (!promisesOn(promises)) continue;
      if (!wanted) {
        wanted = { ...promises, mode: promises.mode === 'full' ? 'full' : 'sampled' };
        filterId = part.filterId;
        continue;
      }
      if (promises.mode === 'full') wanted.mode = 'full';
      wanted.leakAfterMs = Math.min(wanted.leakAfterMs, promises.leakAfterMs);
      wanted.sampleWindowMs = Math.max(wanted.sampleWindowMs, promises.sampleWindowMs);
      wanted.sampleIntervalMs = Math.min(wanted.sampleIntervalMs, promises.sampleIntervalMs);
      wanted.maxTracked = Math.max(wanted.maxTracked, promises.maxTracked);
      wanted.stackDepth = Math.max(wanted.stackDepth, promises.stackDepth);
      if (part.filterId !== filterId && !this.#warnedFrameFilter) {
        this.#warnedFrameFilter = true;
        this.#error(
          'monitors in this process pass different promises.frameFilter functions',
          new LoopsightError(
            'LOOPSIGHT_MONITORS_DISAGREE',
            'the promise tracker is one per process and uses the first monitor’s; pass the same function to every monitor',
            { site: 'promises.frameFilter' },
          ),
        );
      }
    }
    // Windows that overlap mean tracking all the time.
    if (wanted && wanted.sampleIntervalMs <= wanted.sampleWindowMs) wanted.mode = 'full';
    return wanted;
  }

  #startWatchdog(config: WatchdogConfig): void {
    const watchdog = createStallWatchdog<Tagged>({
      thresholdMs: config.stallThresholdMs,
      captureStacks: config.captureStacks,
      maxStacksPerMinute: config.maxStacksPerMinute,
      profiler: config.profiler,
      capture: config.capture,
      getScope: () => this.#tag(scopeStore.getStore()),
      frameFilter: isApplicationUrl,
      inflight: () => this.#inflightCount(),
      candidates: () => this.#candidates(),
      onStall: (report) => this.#onStall(report),
      onError: (what, error) => this.#error(what, error),
    });
    this.#watchdog = watchdog;
    this.#guard('the stall watchdog failed to start', 'watchdog:start', () => watchdog.start());
  }

  #startTracker(config: TrackerConfig): void {
    const tracker = createPromiseTracker<RequestScope>({
      ...config,
      getScope: () => scopeStore.getStore(),
      // Each monitor hears of a site once a minute, not only the first to hit it.
      partition: (scope) => this.#ownerOf(scope) ?? 0,
      onReport: (report) => this.#onPromise(report),
      onError: (what, error) => this.#error(what, error),
    });
    this.#tracker = tracker;
    this.#guard('the promise tracker failed to start', 'tracker:start', () => tracker.start());
  }

  #tag(scope: RequestScope | undefined): Tagged | undefined {
    return scope === undefined ? undefined : { s: scope, m: this.#owners.get(scope) };
  }

  #inflightCount(): number {
    let n = 0;
    for (const slot of this.#slots.values()) n += slot.ref.deref()?.inflight().size ?? 0;
    return n;
  }

  *#candidates(): Generator<Tagged> {
    const single = this.#slots.size === 1;
    for (const slot of this.#slots.values()) {
      const member = slot.ref.deref();
      if (!member) continue;
      for (const s of member.inflight()) yield { s, m: single ? undefined : slot.id };
    }
  }

  #onStall(raw: WatchdogStallReport<Tagged>): void {
    const { request, candidates, ...rest } = raw;
    const report: StallReport = { type: 'stall', ...rest };
    let owner = request?.m;
    if (request) report.request = request.s;
    if (candidates) {
      report.candidates = candidates.map((c) => c.s);
      // A stall with no established request belongs to a monitor only if every candidate does.
      if (!request && candidates.length > 0 && candidates.every((c) => c.m !== undefined && c.m === candidates[0]?.m)) {
        owner = candidates[0]?.m;
      }
    }
    const accepts = (slot: Slot) => slot.loopLag !== false && report.durationMs >= slot.loopLag.stallThresholdMs;
    const member = this.#recipient(owner, accepts)?.ref.deref();
    if (!member) return;
    // The monitor shapes it by its own options (stall.ts) and emits it.
    member.deliver(report);
    if (this.#threads instanceof ThreadReporter) this.#threads.stall(report);
  }

  /**
   * The main thread listens to the worker threads' monitors; a worker's first monitor with loopLag
   * sends its figures there, every window of its sampler.
   */
  #startThreads(loopLag: ResolvedLoopLag | false): void {
    if (this.#threads) return;
    const onError = (what: string, error: unknown) => this.#error(what, error);
    if (isMainThread) this.#threads = new ThreadRegistry(onError);
    else if (loopLag) this.#threads = new ThreadReporter(() => this.#samplers.values().next().value?.part, loopLag.windowMs, onError);
    this.#threads?.start();
  }

  /** The slot a scope belongs to: recorded, or with one monitor running, that one. */
  #ownerOf(scope: RequestScope | undefined): number | undefined {
    const owner = scope === undefined ? undefined : this.#owners.get(scope);
    if (owner !== undefined) return owner;
    for (const slot of this.#slots.values()) if (slot.ref.deref()) return slot.id;
    return undefined;
  }

  #onPromise(report: TrackedPromiseReport<RequestScope>): void {
    const owner = report.request === undefined ? undefined : this.#owners.get(report.request);
    const slot = this.#recipient(owner, (s) => promisesOn(s.promises));
    slot?.ref.deref()?.deliver(report as PromiseReport);
  }

  /**
   * The monitor a report goes to: the owner of its request if that monitor wants it; with no
   * owner, the longest-running monitor that wants it. Never more than one.
   */
  #recipient(owner: number | undefined, accepts: (slot: Slot) => boolean): Slot | undefined {
    if (owner !== undefined) {
      const slot = this.#slots.get(owner);
      if (slot?.ref.deref()) return accepts(slot) ? slot : undefined;
    }
    for (const slot of this.#slots.values()) if (slot.ref.deref() && accepts(slot)) return slot;
    return undefined;
  }

  /** A failure of a shared part, told to one monitor (each warns once per kind of failure). */
  #error(what: string, error: unknown): void {
    for (const slot of this.#slots.values()) {
      const member = slot.ref.deref();
      if (!member) continue;
      member.reportError(what, error);
      return;
    }
  }

  #guard(what: string, site: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#error(what, warning('LOOPSIGHT_SHARED_PART_FAILED', error, { site }));
    }
  }
}

// One hub per process, shared by the ESM and CJS builds and by copies of @loopsight/core in
// node_modules, as the scope store is.
const KEY = Symbol.for('loopsight.core.hub.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: Hub };

let cached: Hub | undefined;

/** The process's hub; created on first use (a monitor's start()), never on import. */
export function hub(): Hub {
  cached ??= holder[KEY] ??= new Hub();
  return cached;
}

/** The worker threads' figures for the main thread's exporters (empty in a worker). Never creates the hub. */
export function threadFeed(): ThreadFeed {
  return (cached ?? holder[KEY])?.threads ?? emptyFeed();
}

/**
 * The correlation headers of the monitors running in this process (`correlation.header` of each),
 * whether or not they propagate: what correlationHeaders() hands out. Never creates the hub.
 */
export function correlationHeaderNames(): string[] {
  return (cached ?? holder[KEY])?.headers() ?? [];
}
