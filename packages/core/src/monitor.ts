import diagnosticsChannel from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { mapStackFrames } from '@loopsight/loop-lag/kit';
import { codeOf, describeError, isLoopsightError, type LoopsightCode, LoopsightTypeError, warning, warningKey } from '@loopsight/options';
import type { PromiseTrackerStats } from '@loopsight/promises';
import { BackpressureWatch, type DrainWait, patchResponses, type WriterWatch } from './backpressure.js';
import { CHANNELS } from './channels.js';
import { culpritOf } from './culprit.js';
import { hub, type Member, type Parts } from './hub.js';
import { InflightRegistry, NO_SLOT } from './inflight.js';
import { DEFAULT_PROMISES, defaultLogger, resolveOptions, scopeId, writeReportLine } from './options.js';
import { type OutboundWait, observeFetchWaits, originLabeler } from './outbound.js';
import { DELAY_BUCKETS_MS, EMPTY_STATS } from './sampler.js';
import { shapeStall } from './stall.js';
import { scopeStore } from './store.js';
import type {
  BackpressureReport,
  ConnectionCounts,
  Exporter,
  Health,
  LoopDelayHistogram,
  LoopStats,
  Monitor,
  MonitorCounters,
  MonitorOptions,
  PromiseReport,
  RejectReason,
  RequestRecord,
  RequestScope,
  ResolvedOptions,
  ResolvedPromises,
  ResolvedShed,
  ShedInfo,
  ShedReason,
  StallReport,
} from './types.js';

/** Kinds of problem a monitor warns of, at most: past it, problems are only counted. */
const MAX_WARNED = 256;

/** A contained problem's code and the site that tells it from others of that code. */
type Problem = readonly [LoopsightCode, string];

const requestChannel = diagnosticsChannel.channel(CHANNELS.request);
const stallChannel = diagnosticsChannel.channel(CHANNELS.stall);
const promiseChannel = diagnosticsChannel.channel(CHANNELS.promise);
const requestStartChannel = diagnosticsChannel.channel(CHANNELS.requestStart);
const backpressureChannel = diagnosticsChannel.channel(CHANNELS.backpressure);

type EventName = 'stall' | 'promise' | 'request' | 'backpressure';

/**
 * What loopsight's own packages (adapters, context, tests) reach in a monitor, and how they tell one:
 * a property behind a `Symbol.for` key, so that the ESM and CJS builds (or two copies of core)
 * recognize each other's monitors, and nothing of it shows in the public type.
 */
const INTERNALS = Symbol.for('loopsight.core.monitor.v1');

export interface MonitorInternals {
  /** The options after defaults and validation. Frozen. */
  readonly options: ResolvedOptions;
  /** Set by adapters on the monitors they create: such a monitor goes with its app (see Hub). */
  heldWeakly: boolean;
  /** Registers a scope as in flight; returns its slot in the registry, for `end` or `drop`. */
  begin(scope: RequestScope): number;
  /** Ends a scope: removes it from the registry and emits 'request'. */
  end(scope: RequestScope, slot: number, t0: number, status: number | undefined, aborted: boolean): void;
  /** Ends a scope another monitor took over (see request.ts, `adoptAmbient`): no 'request' event. */
  drop(scope: RequestScope, slot: number): void;
  /** Counts an incoming correlation id that was refused. */
  rejected(reason: RejectReason): void;
  /** A stall or promise report: to listeners, diagnostics_channel and `onReport`. */
  report(report: StallReport | PromiseReport): void;
  /**
   * Why this request should be shed now, or undefined. One property read while the process is
   * healthy; the exemptions are looked at only while it is overloaded.
   */
  shedReason(req: IncomingMessage, path: string): ShedReason | undefined;
  /** Counts a shed request and tells `shed.onShed`. */
  shed(info: ShedInfo): void;
  reportError(what: string, error: unknown): void;
  /**
   * Set by `@loopsight/register`, which runs before any application code: the epoch ms at which the
   * process began to serve (its first HTTP `listen()`), `Infinity` until then. A stall that began
   * before it gets `phase: 'startup'`. Unset for every other monitor: one started by application
   * code cannot tell whether the process listened before it.
   */
  servingSince: (() => number) | undefined;
  /**
   * Turns connection counting on (`counters().connections`, the exporters' connection metrics) and
   * returns the counter an adapter of long-lived connections reports to.
   */
  countConnections(): ConnectionCounter;
  /**
   * Calls `fn` once connections are counted: now if they are, else when an adapter turns counting
   * on. For exporters started before that adapter was mounted. Returns the unsubscribe function.
   */
  whenConnectionsCounted(fn: () => void): () => void;
  /**
   * Stops a component attached by an adapter and lets go of it: for an adapter whose thing (a
   * WebSocket server) closes while a shared monitor goes on, so that components do not pile up.
   */
  detach(component: Exporter): void;
  /** The backpressure watch, unless `backpressure: false`: adapters of other writers (WebSocket) hand it their writes told to wait. */
  readonly backpressure: WriterWatch | undefined;
  /** Calls `fn` with every wait for 'drain' the watch timed (for the exporters' histograms); returns the unsubscribe function. */
  onDrain(fn: (wait: DrainWait) => void): () => void;
  /**
   * Calls `fn` with every fetch() wait for a connection the monitor hears of while it runs (none
   * with `outbound: false`), its origin already bounded by `outbound.maxOrigins`. For exporters.
   * Returns the unsubscribe function.
   */
  onOutbound(fn: (wait: OutboundWait) => void): () => void;
}

/** What an adapter of long-lived connections reports. */
export interface ConnectionCounter {
  opened(): void;
  closed(): void;
}

/** The internals of a monitor made by any copy of core, or undefined for anything else. */
export function internalsOf(value: unknown): MonitorInternals | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const internals = (value as { [INTERNALS]?: unknown })[INTERNALS];
  return typeof internals === 'object' && internals !== null ? (internals as MonitorInternals) : undefined;
}

/** The monitor's internals, or a TypeError for anything that is not a monitor. */
export function internals(monitor: Monitor): MonitorInternals {
  const found = internalsOf(monitor);
  if (found === undefined)
    throw new LoopsightTypeError('ERR_LOOPSIGHT_NOT_A_MONITOR', 'loopsight: expected a Monitor from createMonitor()');
  return found;
}

function idleTrackerStats(promises: ResolvedPromises): PromiseTrackerStats {
  const none = () => ({ floating: 0, leaked: 0, unhandled: 0 });
  const mode = promises.mode === 'full' ? 'full' : 'sampled';
  return {
    mode,
    tracked: 0,
    maxTracked: promises.maxTracked,
    dropped: 0,
    sampling: false,
    windows: 0,
    reported: none(),
    suppressed: none(),
  };
}
type Listener = (record: never) => void;

/** A promise or any thenable: what an async handler, job or `monitor.run()` function returns. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

/** The Monitor; see its interface in types.ts. Made only by createMonitor(). */
class LoopsightMonitor implements Monitor {
  readonly #options: ResolvedOptions;
  readonly #handle: MonitorInternals;
  readonly #inflight: InflightRegistry;
  readonly #listeners: Record<EventName, Listener[]> = { stall: [], promise: [], request: [], backpressure: [] };
  readonly #backpressure: BackpressureWatch | undefined;
  #drainListeners: ((wait: DrainWait) => void)[] = [];
  #unpatch: (() => void) | undefined;
  readonly #components: Exporter[] = [];
  readonly #started = new Set<Exporter>();
  readonly #warned = new Set<string>();
  readonly #shed: Record<ShedReason, number> = { event_loop_delay: 0, event_loop_utilization: 0, heap_used: 0 };
  readonly #counters: MonitorCounters = {
    correlationIdsRejected: { too_long: 0, invalid: 0, duplicate: 0 },
    inflightDropped: 0,
    internalErrors: 0,
  };
  #connections: ConnectionCounts | undefined;
  #connectionWaiters: (() => void)[] = [];
  #outboundListeners: ((wait: OutboundWait) => void)[] = [];
  readonly #outboundLabel: ((origin: string) => string) | undefined;
  #unobserveFetchWaits: (() => void) | undefined;
  /** How the process's shared parts see this monitor. */
  readonly #member: Member;
  /** The shared parts, while running. */
  #parts: Parts | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options?: MonitorOptions) {
    const resolved = resolveOptions(options);
    this.#options = resolved;
    this.#inflight = new InflightRegistry(resolved.maxInflight);
    for (const exporter of resolved.exporters) this.#components.push(exporter);
    if (resolved.outbound) this.#outboundLabel = originLabeler(resolved.outbound.maxOrigins);
    const { promises } = resolved;
    this.#member = {
      options: resolved,
      defaultFrameFilter: promises !== false && promises.frameFilter === DEFAULT_PROMISES.frameFilter,
      inflight: () => this.#inflight,
      deliver: (report) => this.#report(report),
      reportError: (what, error) => this.reportError(what, error),
    };
    this.#backpressure =
      resolved.backpressure === false
        ? undefined
        : new BackpressureWatch(resolved.backpressure, resolved.frameFilter, {
            report: (report) => this.#report(report),
            drained: (wait) => {
              for (const fn of this.#drainListeners)
                this.#guard('a drain listener threw', ['LOOPSIGHT_EXPORTER_FAILED', 'drain'], () => fn(wait));
            },
            reportError: (what, error) => this.reportError(what, error),
          });
    this.#handle = {
      options: resolved,
      heldWeakly: false,
      begin: (scope) => this.#begin(scope),
      end: (scope, slot, t0, status, aborted) => this.#end(scope, slot, t0, status, aborted),
      drop: (scope, slot) => {
        this.#inflight.delete(slot, scope);
        hub().tracker?.scopeEnded(scope);
      },
      rejected: (reason) => {
        this.#counters.correlationIdsRejected[reason]++;
      },
      report: (report) => this.#report(report),
      shedReason: (req, path) => this.#shedReason(req, path),
      shed: (info) => this.#countShed(info),
      reportError: (what, error) => this.reportError(what, error),
      servingSince: undefined,
      countConnections: () => this.#countConnections(),
      whenConnectionsCounted: (fn) => {
        if (this.#connections) {
          fn();
          return () => {};
        }
        this.#connectionWaiters.push(fn);
        return () => {
          this.#connectionWaiters = this.#connectionWaiters.filter((f) => f !== fn);
        };
      },
      backpressure: this.#backpressure,
      onDrain: (fn) => {
        this.#drainListeners = [...this.#drainListeners, fn];
        return () => {
          this.#drainListeners = this.#drainListeners.filter((f) => f !== fn);
        };
      },
      detach: (component) => {
        const at = this.#components.indexOf(component);
        if (at !== -1) this.#components.splice(at, 1);
        if (this.#started.delete(component)) void this.#stopComponent(component);
      },
      onOutbound: (fn) => {
        // Copy on write, as the event listeners.
        this.#outboundListeners = [...this.#outboundListeners, fn];
        return () => {
          this.#outboundListeners = this.#outboundListeners.filter((f) => f !== fn);
        };
      },
    };
    Object.defineProperty(this, INTERNALS, { value: this.#handle });
  }

  /** Whether start() was called and stop() was not. */
  get running(): boolean {
    return this.#parts !== undefined;
  }

  /**
   * Starts the monitor and every attached component. The watchdog thread, the loop sampler and the
   * promise hooks are the process's, shared by every monitor: the first start() starts them.
   * Idempotent; adapters call it.
   */
  start(): void {
    if (this.#parts) return;
    this.#parts = hub().join(this.#member, this.#handle.heldWeakly);
    if (this.#backpressure) {
      this.#backpressure.start();
      this.#unpatch = patchResponses();
    }
    if (this.#outboundLabel) {
      this.#guard('fetch waits cannot be observed; outbound queueing is not measured', ['LOOPSIGHT_SHARED_PART_FAILED', 'outbound'], () => {
        this.#unobserveFetchWaits = LoopsightMonitor.#observeWeakly(new WeakRef(this));
      });
    }
    for (const component of this.#components) this.#startComponent(component);
  }

  /**
   * Stops the components and lets go of the shared parts, which stop with the last monitor: at
   * once for a monitor you created; 2 s later for one an adapter made, in case the next app's
   * starts (a test suite builds one per test). Idempotent; the monitor can be started again.
   */
  stop(): Promise<void> {
    if (!this.#parts) return this.#stopping ?? Promise.resolve();
    this.#parts = undefined;
    this.#backpressure?.stop();
    this.#unpatch?.();
    this.#unpatch = undefined;
    this.#unobserveFetchWaits?.();
    this.#unobserveFetchWaits = undefined;
    const shared = hub()
      .leave(this.#member, this.#handle.heldWeakly)
      .catch((error: unknown) =>
        this.reportError('the shared parts failed to stop', warning('LOOPSIGHT_SHARED_PART_FAILED', error, { site: 'stop' })),
      );
    const stops = [...this.#started].map((component) => {
      this.#started.delete(component);
      return this.#stopComponent(component);
    });
    this.#stopping = Promise.all([...stops, shared]).then(() => undefined);
    return this.#stopping;
  }

  /**
   * Ties a component's lifecycle to this monitor: started now if the monitor runs, else on start();
   * stopped on stop(). A component with the same name as one attached already is ignored.
   */
  attach(component: Exporter): this {
    if (this.#components.some((c) => c.name === component.name)) return this;
    this.#components.push(component);
    if (this.#parts) this.#startComponent(component);
    return this;
  }

  on(event: 'stall', fn: (r: StallReport) => void): this;
  on(event: 'promise', fn: (r: PromiseReport) => void): this;
  on(event: 'request', fn: (r: RequestRecord) => void): this;
  on(event: 'backpressure', fn: (r: BackpressureReport) => void): this;
  on(event: EventName, fn: Listener): this {
    const list = this.#listeners[event];
    if (!list) {
      throw new LoopsightTypeError(
        'ERR_LOOPSIGHT_INVALID_ARGUMENT',
        `loopsight: monitor.on() event must be one of 'stall', 'promise', 'request', 'backpressure' (got ${String(event)})`,
      );
    }
    if (typeof fn !== 'function')
      throw new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', 'loopsight: monitor.on() listener must be a function');
    // Copy on write: emit() iterates without copying.
    this.#listeners[event] = [...list, fn];
    return this;
  }

  off(event: EventName, fn: Listener): this {
    const list = this.#listeners[event];
    if (list) this.#listeners[event] = list.filter((l) => l !== fn);
    return this;
  }

  /** Loop delay (beyond the sampling resolution) and utilization over the last complete window, in ms. */
  loopStats(): LoopStats {
    return this.#parts?.sampler?.stats() ?? EMPTY_STATS;
  }

  /** Delay samples since start() in cumulative buckets (1 ms to 10 s), up to the last complete window. */
  loopDelayHistogram(): LoopDelayHistogram {
    const sampler = this.#parts?.sampler;
    if (sampler) return sampler.histogram();
    return { boundsMs: DELAY_BUCKETS_MS, counts: DELAY_BUCKETS_MS.map(() => 0), count: 0, sumMs: 0 };
  }

  /** The requests and jobs running now, oldest first (at most `maxInflight` of them are tracked). */
  inflight(): RequestScope[] {
    return this.#inflight.list();
  }

  /** A copy of the monitor's counters. */
  counters(): MonitorCounters {
    const c = this.#counters;
    const counters: MonitorCounters = { ...c, correlationIdsRejected: { ...c.correlationIdsRejected } };
    const { promises } = this.#options;
    if (promises !== false && promises.mode !== 'off') {
      // The tracker is the process's: its counts cover every monitor's requests.
      const tracker = this.#parts ? hub().tracker : undefined;
      counters.promises = tracker?.stats() ?? idleTrackerStats(promises);
    }
    if (this.#options.shed) counters.shed = { ...this.#shed };
    if (this.#connections) counters.connections = { ...this.#connections };
    if (this.#backpressure) counters.backpressure = this.#backpressure.counts();
    return counters;
  }

  /**
   * Held weakly, as the hub holds an adapter's monitor: one that goes with its app unsubscribes at
   * the next fetch after it was collected. Static: a listener made in an instance method keeps that
   * method's context, and with it the monitor (1,000 dropped apps' monitors were kept that way).
   */
  static #observeWeakly(ref: WeakRef<LoopsightMonitor>): () => void {
    const unsubscribe = observeFetchWaits((origin, seconds) => {
      const monitor = ref.deref();
      if (monitor) monitor.#outboundWait(origin, seconds);
      else unsubscribe();
    });
    return unsubscribe;
  }

  #outboundWait(origin: string, seconds: number): void {
    const listeners = this.#outboundListeners;
    if (listeners.length === 0 || !this.#outboundLabel) return;
    const wait: OutboundWait = { origin: this.#outboundLabel(origin), seconds };
    for (const fn of listeners)
      this.#guard('an outbound wait could not be recorded', ['LOOPSIGHT_EXPORTER_FAILED', 'outbound'], () => fn(wait));
  }

  #countConnections(): ConnectionCounter {
    if (!this.#connections) {
      const counts: ConnectionCounts = { opened: 0, closed: 0, open: 0 };
      this.#connections = counts;
      for (const fn of this.#connectionWaiters.splice(0))
        this.#guard('a connection metric could not be set up', ['LOOPSIGHT_EXPORTER_FAILED', 'connections'], fn);
    }
    const counts = this.#connections;
    return {
      opened: () => {
        counts.opened++;
        counts.open++;
      },
      closed: () => {
        counts.closed++;
        counts.open--;
      },
    };
  }

  /**
   * For readiness probes: 'overloaded' while the `shed` option's guard sheds load, with the reasons
   * and the last sampled signals. Without `shed`, always 'ok'.
   *
   * @example
   * app.get('/ready', (req, res) => res.status(monitor.health().status === 'ok' ? 200 : 503).end());
   */
  health(): Health {
    const guard = this.#parts?.guard;
    if (guard) return guard.state();
    return { status: 'ok', reasons: [], signals: { eventLoopDelayMs: 0, eventLoopUtilization: 0, heapUsedBytes: 0 } };
  }

  #shedReason(req: IncomingMessage, path: string): ShedReason | undefined {
    const reason = this.#parts?.guard?.overloaded;
    if (reason === undefined) return undefined;
    const shed = this.#options.shed as ResolvedShed;
    try {
      if (shed.exempt(req, path)) return undefined;
    } catch (error) {
      this.reportError('shed.exempt threw; the request was served', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'shed.exempt' }));
      return undefined;
    }
    return reason;
  }

  #countShed(info: ShedInfo): void {
    this.#shed[info.reason]++;
    const onShed = (this.#options.shed as ResolvedShed).onShed;
    if (onShed) this.#guard('shed.onShed threw', ['LOOPSIGHT_CALLBACK_THREW', 'shed.onShed'], () => onShed(info));
  }

  /**
   * Runs non-HTTP work (a queue consumer, a cron job) as a tracked scope: it gets a correlation id,
   * shows in `inflight()` and emits 'request' when `fn` returns or its promise settles.
   *
   * @example
   * queue.on('message', (msg) => monitor.run({ correlationId: msg.id, route: 'queue:orders' }, () => handle(msg)));
   */
  run<T>(scope: Partial<RequestScope>, fn: () => T): T {
    if (typeof scope !== 'object' || scope === null) {
      throw new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', 'loopsight: monitor.run() scope must be an object');
    }
    if (typeof fn !== 'function')
      throw new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', 'loopsight: monitor.run() fn must be a function');
    const { correlationId, method, route, startedAt } = scope;
    // A refused id (hostile, or not a string) is replaced and counted, never thrown into the caller.
    const job: RequestScope = {
      correlationId: scopeId(correlationId, this.#options.correlation, this.#handle),
      startedAt: startedAt ?? Date.now(),
    };
    if (method !== undefined) job.method = method;
    if (route !== undefined) job.route = route;
    const t0 = performance.now();
    const slot = this.#begin(job);
    let result: T;
    try {
      result = scopeStore.run(job, fn);
    } catch (error) {
      this.#end(job, slot, t0, undefined, true);
      throw error;
    }
    if (!isThenable(result)) {
      this.#end(job, slot, t0, undefined, false);
      return result;
    }
    // A new promise, so the caller's unhandled-rejection behaviour stays theirs.
    return result.then(
      (value) => {
        this.#end(job, slot, t0, undefined, false);
        return value;
      },
      (error: unknown) => {
        this.#end(job, slot, t0, undefined, true);
        throw error;
      },
    ) as T;
  }

  #begin(scope: RequestScope): number {
    const slot = this.#inflight.add(scope);
    if (slot === NO_SLOT) this.#counters.inflightDropped++;
    if (this.#parts) hub().own(scope, this.#parts);
    if (requestStartChannel.hasSubscribers) requestStartChannel.publish(scope);
    return slot;
  }

  #end(scope: RequestScope, slot: number, t0: number, status: number | undefined, aborted: boolean): void {
    this.#inflight.delete(slot, scope);
    hub().tracker?.scopeEnded(scope);
    if (this.#listeners.request.length === 0 && !requestChannel.hasSubscribers) return;
    const record: RequestRecord = {
      type: 'request',
      correlationId: scope.correlationId,
      aborted,
      startedAt: scope.startedAt,
      durationMs: performance.now() - t0,
    };
    const { method, route } = scope;
    if (method !== undefined) record.method = method;
    if (route !== undefined) record.route = route;
    if (status !== undefined) record.status = status;
    // Listeners run in the scope of the request they hear about, whatever context ended it.
    scopeStore.run(scope, () => this.#emit('request', record));
  }

  /** Delivers an event to listeners and to diagnostics_channel; a throwing listener is contained. */
  #emit(event: 'request', record: RequestRecord): void;
  #emit(event: 'stall', record: StallReport): void;
  #emit(event: 'promise', record: PromiseReport): void;
  #emit(event: 'backpressure', record: BackpressureReport): void;
  #emit(event: EventName, record: RequestRecord | StallReport | PromiseReport | BackpressureReport): void {
    for (const fn of this.#listeners[event]) {
      try {
        (fn as (r: typeof record) => void)(record);
      } catch (error) {
        this.reportError(`a '${event}' listener threw`, warning('LOOPSIGHT_CALLBACK_THREW', error, { site: `on('${event}')` }));
      }
    }
    const channel =
      event === 'request' ? requestChannel : event === 'stall' ? stallChannel : event === 'promise' ? promiseChannel : backpressureChannel;
    if (channel.hasSubscribers) channel.publish(record);
  }

  #report(report: StallReport | PromiseReport | BackpressureReport): void {
    if (report.type === 'backpressure') {
      // Frames of the main thread's own stack, taken where the write crossed the bound: mapped once per report.
      const stack = report.stack;
      if (stack !== undefined && stack.length > 0)
        this.#guard('backpressure frames could not be source-mapped', ['LOOPSIGHT_BACKPRESSURE', 'sourcemap'], () => {
          const mapped = mapStackFrames(stack);
          report.stack = mapped;
          const culprit = culpritOf(mapped, this.#options.frameFilter);
          if (culprit) report.culprit = culprit;
        });
      this.#emit('backpressure', report);
    } else if (report.type === 'stall') {
      shapeStall(report, {
        options: this.#options,
        servingSince: this.#handle.servingSince,
        guard: (what, problem, fn) => this.#guard(what, problem, fn),
      });
    } else {
      // A promise report's frames come from the main thread's own stack: mapped here, once per
      // report (the watchdog thread maps stall stacks).
      if (report.stack.length > 0)
        this.#guard('promise frames could not be source-mapped', ['LOOPSIGHT_PROMISE_TRACKER', 'sourcemap'], () => {
          report.stack = mapStackFrames(report.stack);
        });
      const culprit = report.culprit ?? culpritOf(report.stack, this.#options.frameFilter);
      if (culprit) report.culprit = culprit;
    }
    if (report.type === 'stall') this.#emit('stall', report);
    else if (report.type === 'promise') this.#emit('promise', report);
    // Declared blocking is counted (the 'stall' event, the exporters) but writes no report line.
    if (report.type === 'stall' && report.expected) return;
    // Startup (module loading) is not an incident: counted, and a line only from an onReport of one's own.
    if (report.type === 'stall' && report.phase === 'startup' && this.#options.onReport === writeReportLine) return;
    try {
      this.#options.onReport(report);
    } catch (error) {
      this.reportError('onReport threw', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'onReport' }));
    }
  }

  #guard(what: string, problem: Problem, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.reportError(what, warning(problem[0], error, { site: problem[1] }));
    }
  }

  /**
   * Counts a contained failure and warns once per kind of failure, never per request.
   * For components (exporters, adapters) that must not throw into the service.
   */
  reportError(what: string, error: unknown): void {
    this.#counters.internalErrors++;
    // Once per code and site (an exporter, a callback), not per text: a message may carry a value.
    const key = warningKey(what, error);
    if (this.#warned.has(key) || this.#warned.size >= MAX_WARNED) return;
    this.#warned.add(key);
    const cause = isLoopsightError(error) && error.cause !== undefined ? error.cause : error;
    const line = `loopsight: ${what}: ${describeError(cause)} (reported once; counted in monitor.counters().internalErrors)`;
    try {
      const { logger } = this.#options;
      if (logger === defaultLogger) process.emitWarning(line, { code: codeOf(error) });
      else logger.warn(`${line} [${codeOf(error)}]`);
    } catch {
      // A broken logger must not break the caller either.
    }
  }

  async #stopComponent(component: Exporter): Promise<void> {
    try {
      await component.stop?.();
    } catch (error) {
      this.reportError(
        `component ${component.name} failed to stop`,
        warning('LOOPSIGHT_COMPONENT_FAILED', error, { site: `${component.name}:stop` }),
      );
    }
  }

  #startComponent(component: Exporter): void {
    try {
      component.start(this);
      this.#started.add(component);
    } catch (error) {
      this.reportError(
        `component ${component.name} failed to start`,
        warning('LOOPSIGHT_COMPONENT_FAILED', error, { site: `${component.name}:start` }),
      );
    }
  }
}

/**
 * Creates a Monitor. Every option is validated here: a bad one throws a TypeError naming it.
 *
 * @example
 * const monitor = createMonitor({ loopLag: { stallThresholdMs: 200 } });
 * monitor.start();
 * monitor.on('request', (r) => console.log(r.route, r.durationMs));
 */
export function createMonitor(options?: MonitorOptions): Monitor {
  return new LoopsightMonitor(options);
}
