import type { ServerResponse } from 'node:http';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import type { BackpressureReport, Monitor, PromiseReport, RequestScope, StackFrame, StallReport } from '@loopsight/core';
import { warning } from '@loopsight/options';
import { SECURITY_HEADERS } from './assets.js';
import type { ResolvedDashboardOptions } from './options.js';

/** What the page is sent; the shapes are the wire format (src/client/main.ts reads them). */
export interface FrameView {
  fn: string;
  url: string;
  line: number;
  col: number;
}
export interface ScopeView {
  id: string;
  method: string;
  route: string;
}
export interface StallView {
  at: number;
  durationMs: number;
  stackSource: string;
  /** Why the stall has no stack, culprit or request, in words; empty when it has all three. */
  why: string;
  /** Set for a stall during the service's start-up (a report's `phase`), else empty. */
  phase: string;
  culprit: FrameView | null;
  request: ScopeView | null;
  candidates: number;
  inflight: number;
  stack: FrameView[];
}
export interface PromiseView {
  at: number;
  kind: string;
  ageMs: number;
  reason: string;
  suppressed: number;
  culprit: FrameView | null;
  request: ScopeView | null;
  stack: FrameView[];
}
export interface BackpressureView {
  at: number;
  kind: string;
  bufferedBytes: number;
  highWaterMark: number;
  /** slow-consumer: how long the buffer stayed above the bound, ms; 0 otherwise. */
  durationMs: number;
  suppressed: number;
  culprit: FrameView | null;
  request: ScopeView | null;
  stack: FrameView[];
}
/** [epoch s, p50, p90, p99, max (ms), utilization (%)] */
export type Point = [number, number, number, number, number, number];
export interface TickView {
  now: number;
  point: Point;
  windowMs: number;
  inflight: { total: number; oldest: (ScopeView & { ageMs: number })[] };
  health: { status: string; reasons: string[] };
  counters: {
    stalls: number;
    promises: Record<string, number>;
    promisesSuppressed: Record<string, number>;
    idsRejected: Record<string, number>;
    shed: Record<string, number> | null;
    inflightDropped: number;
    internalErrors: number;
    /** The backpressure watch's figures; null when `backpressure: false`. */
    backpressure: { bufferedBytes: number; waiting: number; ignored: number; slowConsumer: number } | null;
  };
}

// Every string that comes from a request or a stack is cut to this many characters, and a stack to
// this many frames: a hostile id or a deep recursion cannot make the feed large.
const MAX_TEXT = 300;
const MAX_FRAMES = 32;
// A page that does not read its stream (a stopped tab, a slow link) is dropped past this much
// unsent data rather than buffered without end. The kernel's socket buffers take megabytes first,
// so this alone comes hours late at a tick's ~600 bytes a second: every stream also ends after
// `feedSeconds` (the page reconnects at once), which bounds how long a non-reader holds a slot.
const MAX_UNSENT_BYTES = 1 << 20;
const TICK_MS = 1000;
// The browser's wait before reconnecting after a stream ended other than by 'bye' (its default is 3 s).
const RETRY_MS = 1000;
const POINT_FIELDS = 6;

function text(value: unknown): string {
  if (value === undefined || value === null) return '';
  const s = String(value);
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function frameView(f: StackFrame | undefined): FrameView | null {
  if (!f) return null;
  return { fn: text(f.functionName), url: text(f.url), line: num(f.line), col: num(f.column) };
}

function scopeView(s: RequestScope | undefined): ScopeView | null {
  if (!s) return null;
  return { id: text(s.correlationId), method: text(s.method), route: text(s.route) };
}

function stackView(stack: readonly StackFrame[] | undefined): FrameView[] {
  return (stack ?? []).slice(0, MAX_FRAMES).map((f) => frameView(f) as FrameView);
}

const round1 = (ms: number) => Math.round(ms * 10) / 10;

/** Why a stall lacks its stack, culprit or request, from the report's own fields (docs/loop-lag.md). */
function explain(r: StallReport): string {
  const why: string[] = [];
  const skipped = r.stackSkipped as string | undefined;
  if (r.stack === undefined || r.stack.length === 0) {
    if (r.expected) why.push('declared blocking (expectBlocking or loopLag.expected): timed, no stack taken');
    else if (skipped === 'rate-limited') why.push('no stack: over loopLag.maxStacksPerMinute, so the stall was timed only');
    else if (skipped === 'disabled') why.push('no stack: loopLag.captureStacks is false');
    else if (skipped === 'expected') why.push('declared blocking: timed, no stack taken');
    else if (r.debuggerAttached)
      why.push(
        'no stack: a debugger may be attached (an inspector is open, or one paused the thread in the last minute); loopsight does not pause a thread a debugger may hold',
      );
    else if (skipped === 'unavailable')
      why.push('no stack: the inspector could not be used, or the watchdog thread was gone or restarting');
    else if (skipped !== undefined) why.push(`no stack: ${text(skipped)}`);
    else why.push(`no stack (stack source: ${text(r.stackSource) || 'none'})`);
  } else if (!r.culprit) {
    why.push(
      r.stackSource === 'late-pause'
        ? 'the pause landed after native code returned, with no application frame below what ran next'
        : 'no application frame on the stack (only Node, node_modules or loopsight)',
    );
  }
  if (!r.request) {
    const candidates = r.candidates?.length ?? 0;
    why.push(
      num(r.inflight) === 0
        ? 'no request was running (a timer, module loading or other work outside a request)'
        : `the request was not established${candidates > 0 ? `: ${candidates} in flight listed as candidates` : ''}`,
    );
  }
  return why.join('; ');
}

/** Chart points in one fixed array: historySeconds × 6 numbers, allocated once. */
class PointRing {
  readonly #data: Float64Array;
  readonly #cap: number;
  #next = 0;
  #size = 0;
  constructor(cap: number) {
    this.#cap = cap;
    this.#data = new Float64Array(cap * POINT_FIELDS);
  }
  push(point: Point): void {
    this.#data.set(point, this.#next * POINT_FIELDS);
    this.#next = (this.#next + 1) % this.#cap;
    if (this.#size < this.#cap) this.#size++;
  }
  values(): Point[] {
    const out: Point[] = [];
    for (let i = 0; i < this.#size; i++) {
      const at = ((this.#next - this.#size + i + this.#cap) % this.#cap) * POINT_FIELDS;
      out.push(Array.from(this.#data.subarray(at, at + POINT_FIELDS)) as Point);
    }
    return out;
  }
}

/** A fixed-size buffer, newest last. */
class Ring<T> {
  readonly #items: T[] = [];
  readonly #cap: number;
  constructor(cap: number) {
    this.#cap = cap;
  }
  push(item: T): void {
    this.#items.push(item);
    if (this.#items.length > this.#cap) this.#items.shift();
  }
  values(): T[] {
    return [...this.#items];
  }
}

/**
 * The dashboard's state and its live feed (server-sent events). From start() to stop() it records
 * one chart point a second (loop stats and utilization) whether a page is open or not, so that a
 * page opened later shows what happened before; the in-flight list, health and counters are read
 * only while a page is connected.
 */
export class Feed {
  readonly #monitor: Monitor;
  readonly #options: ResolvedDashboardOptions;
  readonly #stalls: Ring<StallView>;
  readonly #promises: Ring<PromiseView>;
  readonly #backpressure: Ring<BackpressureView>;
  readonly #points: PointRing;
  /** Open streams, with when each ends (`feedSeconds` after it opened, on performance.now()'s clock). */
  readonly #clients = new Map<ServerResponse, number>();
  /** The dashboard's own requests (its feeds stay open), left out of the in-flight list. */
  readonly #own = new WeakSet<RequestScope>();
  #stallCount = 0;
  #timer: NodeJS.Timeout | undefined;
  #elu: EventLoopUtilization | undefined;
  #listening = false;
  readonly #onStall = (r: StallReport) => this.#guard('stall', () => this.#stall(r));
  readonly #onPromise = (r: PromiseReport) => this.#guard('promise', () => this.#promise(r));
  readonly #onBackpressure = (r: BackpressureReport) => this.#guard('backpressure', () => this.#pressure(r));

  constructor(monitor: Monitor, options: ResolvedDashboardOptions) {
    this.#monitor = monitor;
    this.#options = options;
    this.#stalls = new Ring(options.maxReports);
    this.#promises = new Ring(options.maxReports);
    this.#backpressure = new Ring(options.maxReports);
    this.#points = new PointRing(options.historySeconds);
  }

  start(): void {
    if (this.#listening) return;
    this.#listening = true;
    this.#monitor.on('stall', this.#onStall);
    this.#monitor.on('promise', this.#onPromise);
    this.#monitor.on('backpressure', this.#onBackpressure);
    this.#elu = performance.eventLoopUtilization();
    this.#timer = setInterval(() => this.#guard('tick', () => this.#tick()), TICK_MS).unref();
  }

  /** Ends every stream and lets go of the monitor's events; the buffers are kept for a restart. */
  stop(): void {
    if (this.#listening) {
      this.#monitor.off('stall', this.#onStall);
      this.#monitor.off('promise', this.#onPromise);
      this.#monitor.off('backpressure', this.#onBackpressure);
      this.#listening = false;
    }
    for (const res of this.#clients.keys()) res.end();
    this.#clients.clear();
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#elu = undefined;
  }

  markOwn(scope: RequestScope): void {
    this.#own.add(scope);
  }

  /**
   * Opens a feed on the response, or answers 503 when `maxClients` pages are open already. A HEAD
   * request gets the headers a GET would and holds no slot.
   */
  connect(res: ServerResponse, head: boolean): void {
    if (this.#clients.size >= this.#options.maxClients) {
      res.writeHead(503, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' });
      res.end(`loopsight dashboard: ${this.#options.maxClients} pages are open already (maxClients)\n`);
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' });
    if (head) {
      res.end();
      return;
    }
    this.#clients.set(res, performance.now() + this.#options.feedSeconds * 1000);
    res.on('close', () => this.#clients.delete(res));
    res.write(`retry: ${RETRY_MS}\n\n`);
    const tick = this.#read(false);
    this.#send(res, 'snapshot', {
      stalls: this.#stalls.values().reverse(),
      promises: this.#promises.values().reverse(),
      backpressure: this.#backpressure.values().reverse(),
      points: [...this.#points.values(), tick.point],
      tick,
    });
  }

  #guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#monitor.reportError(`dashboard ${what}`, warning('LOOPSIGHT_DASHBOARD', error, { site: `feed:${what}` }));
    }
  }

  #stall(r: StallReport): void {
    this.#stallCount++;
    const view: StallView = {
      at: num(r.at),
      durationMs: round1(num(r.durationMs)),
      stackSource: text(r.stackSource),
      why: explain(r),
      // The preload sets it for stalls before the first listen (docs/preload.md).
      phase: text(r.phase),
      culprit: frameView(r.culprit),
      request: scopeView(r.request),
      candidates: r.candidates?.length ?? 0,
      inflight: num(r.inflight),
      stack: stackView(r.stack),
    };
    this.#stalls.push(view);
    this.#broadcast('stall', view);
  }

  #promise(r: PromiseReport): void {
    const view: PromiseView = {
      at: Date.now(),
      kind: text(r.kind),
      ageMs: Math.round(num(r.ageMs)),
      reason: text(r.reason),
      suppressed: num(r.suppressed),
      culprit: frameView(r.culprit),
      request: scopeView(r.request),
      stack: stackView(r.stack),
    };
    this.#promises.push(view);
    this.#broadcast('promise', view);
  }

  #pressure(r: BackpressureReport): void {
    const view: BackpressureView = {
      at: Date.now(),
      kind: text(r.kind),
      bufferedBytes: num(r.bufferedBytes),
      highWaterMark: num(r.highWaterMark),
      durationMs: Math.round(num(r.durationMs)),
      suppressed: num(r.suppressed),
      culprit: frameView(r.culprit),
      request: scopeView(r.request),
      stack: stackView(r.stack),
    };
    this.#backpressure.push(view);
    this.#broadcast('backpressure', view);
  }

  #tick(): void {
    const now = Date.now();
    this.#expire(performance.now());
    if (this.#clients.size === 0) {
      // No page: the chart point only.
      this.#points.push(this.#point(now, true));
      return;
    }
    const tick = this.#read(true);
    this.#points.push(tick.point);
    this.#broadcast('tick', tick);
  }

  /** Ends the streams whose `feedSeconds` are up: a page reconnects on 'bye', a client that stopped reading loses its slot. */
  #expire(now: number): void {
    for (const [res, endsAt] of this.#clients) {
      if (endsAt > now) continue;
      this.#clients.delete(res);
      if (res.writableLength > 0) {
        res.destroy();
        continue;
      }
      res.write('event: bye\ndata: {}\n\n');
      res.end();
    }
  }

  /** [epoch s, p50, p90, p99, max, utilization %]; `advance` moves the utilization baseline (ticks do, a snapshot does not). */
  #point(now: number, advance: boolean, stats = this.#monitor.loopStats()): Point {
    // Utilization since the last tick, measured here; the delay figures are the monitor's window.
    const elu = performance.eventLoopUtilization();
    const utilization = this.#elu ? performance.eventLoopUtilization(elu, this.#elu).utilization : stats.utilization;
    if (advance) this.#elu = elu;
    return [
      Math.floor(now / 1000),
      round1(stats.p50),
      round1(stats.p90),
      round1(stats.p99),
      round1(stats.max),
      Math.round(utilization * 1000) / 10,
    ];
  }

  #read(advance: boolean): TickView {
    const now = Date.now();
    const stats = this.#monitor.loopStats();
    const point = this.#point(now, advance, stats);
    const all = this.#monitor.inflight().filter((s) => !this.#own.has(s));
    all.sort((a, b) => a.startedAt - b.startedAt);
    const counters = this.#monitor.counters();
    const health = this.#monitor.health();
    return {
      now,
      point,
      windowMs: stats.windowMs,
      inflight: {
        total: all.length,
        oldest: all
          .slice(0, this.#options.maxInflightShown)
          .map((s) => ({ ...(scopeView(s) as ScopeView), ageMs: Math.max(0, now - s.startedAt) })),
      },
      health: { status: health.status, reasons: [...health.reasons] },
      counters: {
        stalls: this.#stallCount,
        promises: { ...(counters.promises?.reported ?? { floating: 0, leaked: 0, unhandled: 0 }) },
        promisesSuppressed: { ...(counters.promises?.suppressed ?? { floating: 0, leaked: 0, unhandled: 0 }) },
        idsRejected: { ...counters.correlationIdsRejected },
        shed: counters.shed ? { ...counters.shed } : null,
        inflightDropped: counters.inflightDropped,
        internalErrors: counters.internalErrors,
        backpressure: counters.backpressure
          ? {
              bufferedBytes: counters.backpressure.bufferedBytes,
              waiting: counters.backpressure.waiting,
              ignored: counters.backpressure.reported.ignored,
              slowConsumer: counters.backpressure.reported.slowConsumer,
            }
          : null,
      },
    };
  }

  #broadcast(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    const message = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.#clients.keys()) this.#write(res, message);
  }

  #send(res: ServerResponse, event: string, data: unknown): void {
    this.#write(res, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  #write(res: ServerResponse, message: string): void {
    if (res.writableLength > MAX_UNSENT_BYTES) {
      res.destroy();
      return;
    }
    res.write(message);
  }
}
