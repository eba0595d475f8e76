import type { EventEmitter } from 'node:events';
import { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { warning } from '@loopsight/options';
import { SiteLimiter } from '@loopsight/promises';
import type { BackpressureCounts, BackpressureReport, RequestScope, ResolvedBackpressure, StackFrame } from './types.js';

/** How a watched writer is read: its buffer, its high-water mark, and what emits 'drain' and 'close'. */
export interface WriterPort {
  /** Bytes buffered in memory now (`writableLength`, a WebSocket's `bufferedAmount`). */
  buffered(): number;
  readonly highWaterMark: number;
  /** Emits 'drain' once the buffer went below the high-water mark (the response, a WebSocket's net socket). */
  readonly drain: EventEmitter;
  /** Emits 'close' when the writer is done (the response, the WebSocket). */
  readonly close: EventEmitter;
}

/** A drain the watch timed: for the drain-wait histograms. */
export interface DrainWait {
  readonly scope: RequestScope | undefined;
  readonly seconds: number;
}

/** What a watch reports to the monitor that owns it. */
export interface WatchSink {
  report(report: BackpressureReport): void;
  drained(wait: DrainWait): void;
  reportError(what: string, error: unknown): void;
}

/** What an adapter of other writers (WebSocket) hands its writes told to wait to: the monitor's watch. */
export interface WriterWatch {
  pressed(owner: object, scope: RequestScope | undefined, port: (owner: never) => WriterPort, below: (...args: never[]) => unknown): void;
}

/** Frames kept on an `ignored` report. */
const STACK_DEPTH = 10;

const IGNORED = 1;
const SLOW = 2;

type Owner = object;

/** A writer that was told to wait at least once: its state, found by the writer in a WeakMap. */
class Entry {
  /** performance.now() of the write told to wait, while no 'drain' came since; -1 otherwise. */
  waitingSince = -1;
  /** Since when the buffer is above the bound, as last seen; -1 when it is not. */
  aboveSince = -1;
  reported = 0;
  scope: RequestScope | undefined;
  readonly onDrain: () => void;
  readonly onClose: () => void;

  constructor(
    readonly owner: Owner,
    readonly port: WriterPort,
    readonly bound: number,
    watch: BackpressureWatch,
  ) {
    this.onDrain = () => watch.drained(this);
    this.onClose = () => watch.closed(this);
  }

  detach(): void {
    this.port.drain.removeListener('drain', this.onDrain);
    this.port.close.removeListener('close', this.onClose);
  }
}

const asCallSites = (_error: Error, sites: NodeJS.CallSite[]): NodeJS.CallSite[] => sites;

/** The frames above `below`, read as structured call sites whatever `prepareStackTrace` the application set. */
function captureFrames(below: (...args: never[]) => unknown): StackFrame[] {
  const holder: { stack?: unknown } = {};
  const limit = Error.stackTraceLimit;
  const prepare = Error.prepareStackTrace;
  let sites: unknown;
  try {
    Error.stackTraceLimit = 32;
    Error.prepareStackTrace = asCallSites as typeof Error.prepareStackTrace;
    Error.captureStackTrace(holder, below);
    sites = holder.stack;
  } finally {
    Error.stackTraceLimit = limit;
    Error.prepareStackTrace = prepare;
  }
  if (!Array.isArray(sites)) return [];
  return (sites as NodeJS.CallSite[]).map((site) => ({
    functionName: site.getFunctionName() ?? '',
    url: site.getFileName() ?? site.getScriptNameOrSourceURL?.() ?? '',
    line: site.getLineNumber() ?? 0,
    column: site.getColumnNumber() ?? 0,
  }));
}

/**
 * Watches writers for backpressure, one per monitor. Nothing runs per write while a writer is
 * fine: its adapter calls `pressed()` only when a write was told to wait (`write()` returned
 * false). From then on the writer is waiting for 'drain', timed; a write made before that 'drain'
 * ignores backpressure, and is reported once its buffer passes the bound, with the stack taken
 * there and only there. A timer (unref'd, running only while some writer waits) finds the slow
 * consumers. Bounded: at most `maxTracked` writers watched, 1,000 sites remembered (promise reports' rule: one report per site and kind a minute).
 */
export class BackpressureWatch implements WriterWatch {
  readonly #options: ResolvedBackpressure;
  readonly #sink: WatchSink;
  readonly #frameFilter: (url: string) => boolean;
  /** Every writer with listeners on it: at most `maxTracked`. */
  readonly #entries = new Set<Entry>();
  /** The writers waiting for 'drain' now. */
  readonly #waiting = new Set<Entry>();
  /**
   * A writer's record, by the writer. A WeakMap rather than a property of the writer: adding one to
   * a response in the middle of its writes gives responses a second shape in Node's write path.
   */
  #records = new WeakMap<Owner, Entry>();
  readonly #sites = new SiteLimiter();
  readonly #counts = { dropped: 0, ignored: 0, slowConsumer: 0, suppressed: 0 };
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(options: ResolvedBackpressure, frameFilter: (url: string) => boolean, sink: WatchSink) {
    this.#options = options;
    this.#frameFilter = frameFilter;
    this.#sink = sink;
  }

  /** Takes writes from now on. */
  start(): void {
    this.#running = true;
  }

  /** Lets go of every writer and the timer; the watch can start again. */
  stop(): void {
    this.#running = false;
    for (const entry of this.#entries) entry.detach();
    this.#entries.clear();
    this.#records = new WeakMap();
    this.#waiting.clear();
    this.#sites.clear();
    this.#stopTimer();
  }

  /** `monitor.counters().backpressure`: the buffered bytes are summed now, over the writers waiting. */
  counts(): BackpressureCounts {
    let bufferedBytes = 0;
    for (const entry of this.#waiting) bufferedBytes += this.#read(entry);
    const c = this.#counts;
    return {
      bufferedBytes,
      waiting: this.#waiting.size,
      dropped: c.dropped,
      reported: { ignored: c.ignored, slowConsumer: c.slowConsumer },
      suppressed: c.suppressed,
    };
  }

  pressed(owner: object, scope: RequestScope | undefined, port: (owner: never) => WriterPort, below: (...args: never[]) => unknown): void {
    if (!this.#running) return;
    try {
      this.#pressed(owner as Owner, scope, port as (owner: Owner) => WriterPort, below);
    } catch (error) {
      this.#sink.reportError('the backpressure watch failed on a write', warning('LOOPSIGHT_BACKPRESSURE', error, { site: 'write' }));
    }
  }

  #pressed(owner: Owner, scope: RequestScope | undefined, port: (owner: Owner) => WriterPort, below: (...args: never[]) => unknown): void {
    let entry = this.#records.get(owner);
    if (entry === undefined) {
      // A write to a writer that is gone ('close' was emitted already) fails; watching it would hold it until stop().
      if ((owner as { destroyed?: unknown }).destroyed === true) return;
      if (this.#entries.size >= this.#options.maxTracked) {
        this.#counts.dropped++;
        return;
      }
      const p = port(owner);
      const { highWaterMarks, minBytes } = this.#options;
      entry = new Entry(owner, p, Math.max(highWaterMarks * p.highWaterMark, minBytes), this);
      this.#records.set(owner, entry);
      this.#entries.add(entry);
      p.drain.on('drain', entry.onDrain);
      p.close.once('close', entry.onClose);
    }
    if (scope !== undefined) entry.scope = scope;
    if (entry.waitingSince < 0) {
      entry.waitingSince = performance.now();
      this.#waiting.add(entry);
      this.#startTimer();
      return;
    }
    // Written again before 'drain': backpressure ignored. Reported once per writer, past the bound.
    if ((entry.reported & IGNORED) !== 0) return;
    const bytes = this.#read(entry);
    if (bytes <= entry.bound) return;
    entry.reported |= IGNORED;
    if (entry.aboveSince < 0) entry.aboveSince = performance.now();
    const stack = captureFrames(below);
    const report = this.#make('ignored', entry, bytes);
    const mine = stack.filter((f) => this.#isUser(f.url));
    report.stack = (mine.length > 0 ? mine : stack).slice(0, STACK_DEPTH);
    const culprit = mine[0];
    if (culprit !== undefined) report.culprit = culprit;
    const top = culprit ?? stack[0];
    this.#emit(report, top === undefined ? `route:${entry.scope?.route ?? ''}` : `${top.url}:${top.line}:${top.column}`);
  }

  /** 'drain': the wait is over, and timed. */
  drained(entry: Entry): void {
    if (entry.waitingSince < 0) return;
    const seconds = (performance.now() - entry.waitingSince) / 1000;
    entry.waitingSince = -1;
    entry.aboveSince = -1;
    // The timer stops at its next tick once nobody waits: a busy streaming service would otherwise
    // create and clear an interval at almost every 'drain'.
    this.#waiting.delete(entry);
    try {
      this.#sink.drained({ scope: entry.scope, seconds });
    } catch (error) {
      this.#sink.reportError('the backpressure watch failed on a drain', warning('LOOPSIGHT_BACKPRESSURE', error, { site: 'drain' }));
    }
  }

  /** The writer is done: forgotten. A wait cut short by a close is not a drain. */
  closed(entry: Entry): void {
    entry.detach();
    this.#records.delete(entry.owner);
    this.#entries.delete(entry);
    this.#waiting.delete(entry);
  }

  #isUser(url: string): boolean {
    try {
      return this.#frameFilter(url);
    } catch {
      return false;
    }
  }

  #read(entry: Entry): number {
    try {
      const n = entry.port.buffered();
      return Number.isFinite(n) ? n : 0;
    } catch {
      return 0;
    }
  }

  #make(kind: BackpressureReport['kind'], entry: Entry, bytes: number): BackpressureReport {
    const report: BackpressureReport = {
      type: 'backpressure',
      kind,
      bufferedBytes: bytes,
      highWaterMark: entry.port.highWaterMark,
      suppressed: 0,
    };
    const scope = entry.scope;
    if (scope !== undefined) report.request = snapshot(scope);
    return report;
  }

  #emit(report: BackpressureReport, site: string): void {
    const suppressed = this.#sites.admit(`${report.kind}|${site}`, performance.now());
    if (suppressed === undefined) {
      this.#counts.suppressed++;
      return;
    }
    report.suppressed = suppressed;
    if (report.kind === 'ignored') this.#counts.ignored++;
    else this.#counts.slowConsumer++;
    this.#sink.report(report);
  }

  #startTimer(): void {
    if (this.#timer !== undefined) return;
    // A quarter of the threshold, within 50 ms to 1 s: a slow consumer is seen within 25% of it.
    const every = Math.max(50, Math.min(1_000, this.#options.slowConsumerMs / 4));
    this.#timer = setInterval(() => this.#tick(), every);
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    if (this.#waiting.size === 0) {
      this.#stopTimer();
      return;
    }
    const now = performance.now();
    try {
      for (const entry of this.#waiting) {
        const bytes = this.#read(entry);
        if (bytes <= entry.bound) {
          entry.aboveSince = -1;
          continue;
        }
        if (entry.aboveSince < 0) {
          entry.aboveSince = now;
          continue;
        }
        const durationMs = now - entry.aboveSince;
        if ((entry.reported & SLOW) !== 0 || durationMs < this.#options.slowConsumerMs) continue;
        entry.reported |= SLOW;
        const report = this.#make('slow-consumer', entry, bytes);
        report.durationMs = Math.round(durationMs);
        this.#emit(report, `route:${entry.scope?.route ?? ''}`);
      }
    } catch (error) {
      this.#sink.reportError('the backpressure watch failed', warning('LOOPSIGHT_BACKPRESSURE', error, { site: 'tick' }));
    }
  }
}

/** The scope as a report carries it: a copy, holding no framework object. */
function snapshot(scope: RequestScope): RequestScope {
  const json = (scope as { toJSON?: () => RequestScope }).toJSON;
  if (typeof json === 'function') return json.call(scope);
  const copy: RequestScope = { correlationId: scope.correlationId, startedAt: scope.startedAt };
  if (scope.method !== undefined) copy.method = scope.method;
  if (scope.route !== undefined) copy.route = scope.route;
  return copy;
}

/**
 * On a response: what its write was told to wait is handed to (the scope of the request, which
 * knows its monitor). `Symbol.for`: the preload's copy of core and an adapter's share one patch.
 */
export const PRESSED = Symbol.for('loopsight.core.backpressure.pressed.v1');
/** The key under which a response carries its scope for the write patch. */
export const RESPONSE_SCOPE = Symbol.for('loopsight.core.backpressure.scope.v1');

type Write = (this: ServerResponse, chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;
interface Patch {
  refs: number;
  readonly original: Write;
  readonly wrapper: Write;
}
type Pressable = { [PRESSED]?: (res: ServerResponse, below: Write) => void };
type Tagged = ServerResponse & { [RESPONSE_SCOPE]?: Pressable };

const PATCH = Symbol.for('loopsight.core.backpressure.write.v1');
const holder = globalThis as typeof globalThis & { [PATCH]?: Patch };

/**
 * Wraps `ServerResponse.prototype.write` once per process (reference counted across monitors and
 * copies of core): the wrapper reads the boolean the stream computed and does nothing else unless
 * it is false. Returns the release function. Per response, the adapters' scope only tags the
 * response (`RESPONSE_SCOPE`); measured in docs/benchmarks.md.
 */
export function patchResponses(): () => void {
  let patch = holder[PATCH];
  if (patch === undefined) {
    const original = ServerResponse.prototype.write as Write;
    const state: { patch?: Patch } = {};
    const wrapper: Write = function write(this: Tagged, chunk, encoding, callback) {
      const ok = original.call(this, chunk, encoding, callback);
      if (ok === false && (state.patch?.refs ?? 0) > 0) {
        const scope = this[RESPONSE_SCOPE];
        if (scope !== undefined) {
          try {
            scope[PRESSED]?.(this, wrapper);
          } catch {
            // The scope's watch contains its own failures; anything else must not reach the writer.
          }
        }
      }
      return ok;
    };
    patch = { refs: 0, original, wrapper };
    state.patch = patch;
    holder[PATCH] = patch;
    ServerResponse.prototype.write = wrapper as typeof ServerResponse.prototype.write;
  }
  // A wrapper someone put over ours since runs ours underneath: reused as it is.
  patch.refs++;
  const p = patch;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    p.refs--;
    // Unpatched only when ours is still the one in place; else it stays a pass-through (refs 0).
    if (p.refs === 0 && ServerResponse.prototype.write === p.wrapper) {
      ServerResponse.prototype.write = p.original as typeof ServerResponse.prototype.write;
      delete holder[PATCH];
    }
  };
}

/** How a response is read by the watch. */
export function responsePort(res: ServerResponse): WriterPort {
  return {
    buffered: () => res.writableLength,
    highWaterMark: res.writableHighWaterMark,
    drain: res,
    close: res,
  };
}
