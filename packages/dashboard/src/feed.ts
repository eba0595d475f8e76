import type { ServerResponse } from 'node:http';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import type { Monitor, PromiseReport, RequestScope, StackFrame, StallReport } from '@loopsight/core';
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
  };
}

// Every string that comes from a request or a stack is cut to this many characters, and a stack to
// this many frames: a hostile id or a deep recursion cannot make the feed large.
const MAX_TEXT = 300;
const MAX_FRAMES = 32;
// A page that does not read its stream (a stopped tab, a slow link) is dropped past this much
// unsent data rather than buffered without end.
const MAX_UNSENT_BYTES = 1 << 20;
const TICK_MS = 1000;

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
 * The dashboard's state and its live feed (server-sent events). While no page is open it costs one
 * listener call per stall or promise report and nothing else: the once-a-second tick (loop stats,
 * in-flight list, counters) runs only while a page is connected.
 */
export class Feed {
  readonly #monitor: Monitor;
  readonly #options: ResolvedDashboardOptions;
  readonly #stalls: Ring<StallView>;
  readonly #promises: Ring<PromiseView>;
  readonly #points: Ring<Point>;
  readonly #clients = new Set<ServerResponse>();
  /** The dashboard's own requests (its feeds stay open), left out of the in-flight list. */
  readonly #own = new WeakSet<RequestScope>();
  #stallCount = 0;
  #timer: NodeJS.Timeout | undefined;
  #elu: EventLoopUtilization | undefined;
  #listening = false;
  readonly #onStall = (r: StallReport) => this.#guard('stall', () => this.#stall(r));
  readonly #onPromise = (r: PromiseReport) => this.#guard('promise', () => this.#promise(r));

  constructor(monitor: Monitor, options: ResolvedDashboardOptions) {
    this.#monitor = monitor;
    this.#options = options;
    this.#stalls = new Ring(options.maxReports);
    this.#promises = new Ring(options.maxReports);
    this.#points = new Ring(options.historySeconds);
  }

  start(): void {
    if (this.#listening) return;
    this.#listening = true;
    this.#monitor.on('stall', this.#onStall);
    this.#monitor.on('promise', this.#onPromise);
  }

  /** Ends every stream and lets go of the monitor's events; the buffers are kept for a restart. */
  stop(): void {
    if (this.#listening) {
      this.#monitor.off('stall', this.#onStall);
      this.#monitor.off('promise', this.#onPromise);
      this.#listening = false;
    }
    for (const res of this.#clients) res.end();
    this.#clients.clear();
    this.#idle();
  }

  markOwn(scope: RequestScope): void {
    this.#own.add(scope);
  }

  /** Opens a feed on the response, or answers 503 when `maxClients` pages are open already. */
  connect(res: ServerResponse): void {
    if (this.#clients.size >= this.#options.maxClients) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' });
      res.end(`loopsight dashboard: ${this.#options.maxClients} pages are open already (maxClients)\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    this.#clients.add(res);
    res.on('close', () => {
      this.#clients.delete(res);
      if (this.#clients.size === 0) this.#idle();
    });
    if (this.#timer === undefined) {
      this.#elu = performance.eventLoopUtilization();
      this.#timer = setInterval(() => this.#guard('tick', () => this.#tick()), TICK_MS).unref();
    }
    const tick = this.#read();
    this.#send(res, 'snapshot', {
      stalls: this.#stalls.values().reverse(),
      promises: this.#promises.values().reverse(),
      points: [...this.#points.values(), tick.point],
      tick,
    });
  }

  #idle(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#elu = undefined;
  }

  #guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#monitor.reportError(`dashboard ${what}`, error);
    }
  }

  #stall(r: StallReport): void {
    this.#stallCount++;
    const view: StallView = {
      at: num(r.at),
      durationMs: round1(num(r.durationMs)),
      stackSource: text(r.stackSource),
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

  #tick(): void {
    const tick = this.#read();
    this.#points.push(tick.point);
    this.#broadcast('tick', tick);
  }

  #read(): TickView {
    const now = Date.now();
    const stats = this.#monitor.loopStats();
    // Utilization over the last second, measured here; the delay figures are the monitor's window.
    const elu = performance.eventLoopUtilization();
    const utilization = this.#elu ? performance.eventLoopUtilization(elu, this.#elu).utilization : stats.utilization;
    this.#elu = elu;
    const all = this.#monitor.inflight().filter((s) => !this.#own.has(s));
    all.sort((a, b) => a.startedAt - b.startedAt);
    const counters = this.#monitor.counters();
    const health = this.#monitor.health();
    return {
      now,
      point: [
        Math.floor(now / 1000),
        round1(stats.p50),
        round1(stats.p90),
        round1(stats.p99),
        round1(stats.max),
        Math.round(utilization * 1000) / 10,
      ],
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
      },
    };
  }

  #broadcast(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    const message = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.#clients) this.#write(res, message);
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
