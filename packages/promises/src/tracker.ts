import { performance } from 'node:perf_hooks';
import { promiseHooks } from 'node:v8';
import { register, unregister } from './detach.js';
import { type CapturedStack, type Creation, capture, describeCreation, isUserFrame } from './stack.js';
import type {
  PromiseKind,
  PromiseKindCounts,
  PromiseTracker,
  PromiseTrackerOptions,
  PromiseTrackerStats,
  TrackedPromiseReport,
  TrackerMode,
  TrackerStackFrame,
} from './types.js';

/** Defaults of every optional tracker option (the monitor's `promises` options use the same). */
export const TRACKER_DEFAULTS = Object.freeze({
  mode: 'sampled' as TrackerMode,
  leakAfterMs: 5_000,
  sampleWindowMs: 1_000,
  sampleIntervalMs: 30_000,
  maxTracked: 10_000,
  stackDepth: 10,
});

/** One report per creation site and kind in this interval; the rest are counted. */
const REPORT_EVERY_MS = 60_000;
/** Creation sites remembered for the rule above (oldest forgotten first). */
const MAX_SITES = 1_000;
/** A scope that never ended (a context opened without the monitor) is forgotten after this long. */
const STALE_SCOPE_MS = 10 * 60_000;

// Entry.state bits.
const SETTLED = 1;
const ENDED = 2; // its request ended
const DONE = 4; // decided: nothing more to report (or no longer tracked)
const DETACHED = 8; // detach(): intended fire-and-forget
const UNHANDLED = 16; // reported as unhandled, so not as floating too

/** A promise created in a scope (not by then/catch/finally or an await): the unit that is reported. */
class Entry<S> {
  children = 0;
  state = 0;
  endedAt = 0;
  bucket: Bucket<S> | undefined = undefined;
  direct: Link<S> | undefined = undefined;
  indirect: Link<S> | undefined = undefined;
  constructor(
    readonly scope: S,
    readonly createdAt: number,
    readonly holder: CapturedStack,
  ) {}
}

/**
 * What a promise derived from a tracked one maps to. `direct`: its parent is the entry itself, so
 * it counts as an observation of the entry, unless it settles while the entry is still pending: a
 * real reaction (then, await, a combinator, adoption) can only settle after its parent did, while
 * the wrapper V8 makes for `await nonPromise` inside an async function names that function's own
 * promise as parent and settles at once. One Link per entry and kind is shared by all its children.
 */
class Link<S> {
  constructor(
    readonly root: Entry<S>,
    readonly direct: boolean,
  ) {}
}

/** The entries of one scope, found again when the scope ends. */
class Bucket<S> {
  entries: Entry<S>[] = [];
  live = 0;
  constructor(readonly createdAt: number) {}
  add(entry: Entry<S>): void {
    entry.bucket = this;
    this.live++;
    // A long job retires most of its entries long before it ends: drop them now and then.
    if (this.entries.length >= 64 && this.entries.length >= 4 * this.live)
      this.entries = this.entries.filter((e) => (e.state & DONE) === 0);
    this.entries.push(entry);
  }
}

interface Site {
  at: number;
  suppressed: number;
}

type Resolved<S extends object> = Required<Omit<PromiseTrackerOptions<S>, 'onError' | 'partition'>> &
  Pick<PromiseTrackerOptions<S>, 'onError' | 'partition'>;

const counts = (): PromiseKindCounts => ({ floating: 0, leaked: 0, unhandled: 0 });

function positive(name: string, value: unknown, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new TypeError(
      `loopsight: promise tracker option ${name} must be a positive ${integer ? 'integer' : 'number'} (got ${String(value)})`,
    );
  }
  return value;
}

function resolve<S extends object>(o: PromiseTrackerOptions<S>): Resolved<S> {
  if (typeof o !== 'object' || o === null) throw new TypeError('loopsight: promise tracker options must be an object');
  for (const name of ['getScope', 'onReport'] as const) {
    if (typeof o[name] !== 'function') throw new TypeError(`loopsight: promise tracker option ${name} must be a function`);
  }
  const mode = o.mode ?? TRACKER_DEFAULTS.mode;
  if (mode !== 'sampled' && mode !== 'full')
    throw new TypeError(`loopsight: promise tracker option mode must be 'sampled' or 'full' (got ${String(mode)})`);
  const frameFilter = o.frameFilter ?? isUserFrame;
  if (typeof frameFilter !== 'function') throw new TypeError('loopsight: promise tracker option frameFilter must be a function');
  const sampleWindowMs = positive('sampleWindowMs', o.sampleWindowMs, TRACKER_DEFAULTS.sampleWindowMs);
  const sampleIntervalMs = positive('sampleIntervalMs', o.sampleIntervalMs, TRACKER_DEFAULTS.sampleIntervalMs);
  if (sampleIntervalMs <= sampleWindowMs) {
    throw new TypeError(`loopsight: promise tracker option sampleIntervalMs must be greater than sampleWindowMs (got ${sampleIntervalMs})`);
  }
  const resolved: Resolved<S> = {
    getScope: o.getScope,
    onReport: o.onReport,
    mode,
    leakAfterMs: positive('leakAfterMs', o.leakAfterMs, TRACKER_DEFAULTS.leakAfterMs),
    sampleWindowMs,
    sampleIntervalMs,
    maxTracked: positive('maxTracked', o.maxTracked, TRACKER_DEFAULTS.maxTracked, true),
    stackDepth: positive('stackDepth', o.stackDepth, TRACKER_DEFAULTS.stackDepth, true),
    frameFilter,
  };
  if (o.onError !== undefined) resolved.onError = o.onError;
  if (o.partition !== undefined) {
    if (typeof o.partition !== 'function') throw new TypeError('loopsight: promise tracker option partition must be a function');
    resolved.partition = o.partition;
  }
  return resolved;
}

function describeReason(reason: unknown): string {
  let text: string;
  try {
    text = reason instanceof Error ? `${reason.name}: ${reason.message}` : typeof reason === 'string' ? reason : String(reason);
  } catch {
    text = Object.prototype.toString.call(reason);
  }
  text = text.split('\n', 1)[0] ?? '';
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

// '    at fn (url:line:column)' or '    at url:line:column' of a formatted V8 stack.
const FRAME_LINE = /^\s+at (?:(.*?) \((.+):(\d+):(\d+)\)|(.+):(\d+):(\d+))$/;

interface ReasonSite {
  /** Identifies the site for the once-per-minute rule: never the reason's message. */
  key: string;
  frames: TrackerStackFrame[];
}

function typeOf(reason: unknown): string {
  if (reason === null || (typeof reason !== 'object' && typeof reason !== 'function')) return typeof reason;
  const name = (reason as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name.length <= 100 ? name : 'object';
}

/**
 * Where a rejection whose promise was not tracked comes from, cheaply, on the rare unhandled path:
 * the top frames of an Error reason's stack that are the application's. Keyed by the message, a
 * caller that puts request input in it (`new Error('bad input ' + id)`) would get one report per
 * value and push every real site out of the map. The message is cut off before parsing (it may hold
 * lines that look like frames); without a frame the key is the route and the reason's type.
 */
function reasonSite(reason: unknown, scope: object | undefined, isUser: (url: string) => boolean, depth: number): ReasonSite {
  const frames: TrackerStackFrame[] = [];
  if (reason instanceof Error) {
    const stack = reason.stack;
    const head = `${reason.name}: ${reason.message}`;
    const message = String(reason.message);
    const body = typeof stack !== 'string' ? '' : stack.startsWith(head) ? stack.slice(head.length) : message.includes('\n') ? '' : stack;
    const all: TrackerStackFrame[] = [];
    for (const line of body.split('\n', 64)) {
      const m = FRAME_LINE.exec(line);
      if (m === null) continue;
      const url = m[2] ?? m[5] ?? '';
      all.push({ functionName: m[1] ?? '', url, line: Number(m[3] ?? m[6]), column: Number(m[4] ?? m[7]) });
    }
    const mine = all.filter((f) => isUser(f.url));
    frames.push(...(mine.length > 0 ? mine : all).slice(0, depth));
  }
  const top = frames[0];
  if (top !== undefined) return { key: `${top.url}:${top.line}:${top.column}`, frames };
  const route = (scope as { route?: unknown } | undefined)?.route;
  return { key: `route:${typeof route === 'string' ? route : ''}|${typeOf(reason)}`, frames };
}

class Tracker<S extends object> implements PromiseTracker<S> {
  readonly #o: Resolved<S>;
  readonly #getScope: () => S | undefined;
  readonly #depth: number;
  readonly #max: number;
  #records = new WeakMap<object, Entry<S> | Link<S>>();
  readonly #buckets = new Map<S, Bucket<S>>();
  #ended = new WeakSet<S>();
  #watch: Entry<S>[] = [];
  #lastScope: S | undefined;
  #lastBucket: Bucket<S> | undefined;
  #tracked = 0;
  #dropped = 0;
  #windows = 0;
  #capturing = false;
  #running = false;
  #drainUntil = 0;
  #stopHooks: (() => void) | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #windowTimer: NodeJS.Timeout | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  #unpatch: (() => void) | undefined;
  #lastUnhandled: unknown;
  #lastStaleCheck = 0;
  #decideSoon = false;
  readonly #sites = new Map<string, Site>();
  readonly #reported = counts();
  readonly #suppressed = counts();

  #filterFailed = false;
  /**
   * The frame filter, contained: it runs in the sweep and in scopeEnded(), where a throw used to
   * abandon the rest of a request's promises still counted as tracked, so maxTracked filled up for
   * good. A throwing filter counts the frame as the application's only if the default would.
   */
  readonly #isUser = (url: string): boolean => {
    try {
      return this.#o.frameFilter(url) === true;
    } catch (error) {
      if (!this.#filterFailed) {
        this.#filterFailed = true;
        this.#fail('promises.frameFilter threw', error);
      }
      return isUserFrame(url);
    }
  };

  constructor(options: PromiseTrackerOptions<S>) {
    this.#o = resolve(options);
    this.#getScope = this.#o.getScope;
    this.#depth = this.#o.stackDepth;
    this.#max = this.#o.maxTracked;
  }

  // The two hooks run for every promise in the process while they are installed: keep them tiny.

  readonly #init = (promise: Promise<unknown>, parent: Promise<unknown> | undefined): void => {
    try {
      if (parent !== undefined) {
        const rec = this.#records.get(parent);
        if (rec === undefined) return;
        if (rec instanceof Entry) {
          rec.children++;
          if ((rec.state & (SETTLED | DONE)) === SETTLED) this.#retire(rec);
          rec.direct ??= new Link(rec, true);
          this.#records.set(promise, rec.direct);
        } else {
          const root = rec.root;
          root.indirect ??= new Link(root, false);
          this.#records.set(promise, root.indirect);
        }
        return;
      }
      if (!this.#capturing) return;
      const scope = this.#getScope();
      if (scope === undefined) return;
      if (this.#tracked >= this.#max) {
        this.#dropped++;
        return;
      }
      const entry = new Entry(scope, performance.now(), capture(this.#depth, this.#init));
      this.#records.set(promise, entry);
      this.#place(scope, entry);
    } catch (error) {
      this.#fail('the promise init hook failed', error);
    }
  };

  readonly #settled = (promise: Promise<unknown>): void => {
    const rec = this.#records.get(promise);
    if (rec === undefined) return;
    if (rec instanceof Link) {
      // Settled before its parent: the wrapper of `await nonPromise` (or of a thenable), not a reaction.
      if (rec.direct && (rec.root.state & SETTLED) === 0) rec.root.children--;
      return;
    }
    rec.state |= SETTLED;
    if ((rec.state & DONE) !== 0) return;
    if (rec.children > 0) this.#retire(rec);
    else if ((rec.state & ENDED) !== 0 && !this.#decideSoon) {
      // Settled after its request ended, unobserved so far: decide once this turn of the loop is
      // over (a reaction attached in the same turn still counts), not at the next sweep, which may
      // never come in a process about to exit.
      this.#decideSoon = true;
      setImmediate(this.#decide);
    }
  };

  readonly #decide = (): void => {
    this.#decideSoon = false;
    this.#guard('the sweep failed', () => this.#sweep());
  };

  #place(scope: S, entry: Entry<S>): void {
    this.#tracked++;
    let bucket = scope === this.#lastScope ? this.#lastBucket : this.#buckets.get(scope);
    if (bucket === undefined) {
      if (this.#ended.has(scope)) {
        // Made after its request ended (a timer the handler left behind): work outliving the request.
        entry.state |= ENDED;
        entry.endedAt = entry.createdAt;
        this.#watch.push(entry);
        return;
      }
      bucket = new Bucket<S>(entry.createdAt);
      this.#buckets.set(scope, bucket);
    }
    this.#lastScope = scope;
    this.#lastBucket = bucket;
    bucket.add(entry);
  }

  #retire(entry: Entry<S>): void {
    entry.state |= DONE;
    this.#tracked--;
    if (entry.bucket !== undefined) entry.bucket.live--;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    register(this);
    this.#patchEmit();
    process.on('uncaughtExceptionMonitor', this.#onUncaught);
    const sweepMs = Math.min(1_000, Math.max(20, this.#o.leakAfterMs / 5));
    this.#sweepTimer = setInterval(() => this.#guard('the sweep failed', () => this.#sweep()), sweepMs).unref();
    this.#openWindow();
    if (this.#o.mode === 'sampled') {
      this.#windowTimer = setInterval(
        () => this.#guard('a sampling window failed to open', () => this.#openWindow()),
        this.#o.sampleIntervalMs,
      ).unref();
    }
  }

  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    unregister(this);
    clearInterval(this.#sweepTimer);
    clearInterval(this.#windowTimer);
    clearTimeout(this.#closeTimer);
    this.#sweepTimer = this.#windowTimer = this.#closeTimer = undefined;
    process.off('uncaughtExceptionMonitor', this.#onUncaught);
    this.#unpatch?.();
    this.#unpatch = undefined;
    this.#capturing = false;
    this.#hooksOff();
    this.#abandon();
    this.#records = new WeakMap();
    this.#sites.clear();
  }

  scopeEnded(scope: S): void {
    if (this.#stopHooks === undefined) return;
    try {
      this.#ended.add(scope);
      const bucket = this.#buckets.get(scope);
      if (bucket === undefined) return;
      this.#buckets.delete(scope);
      if (this.#lastScope === scope) this.#lastScope = this.#lastBucket = undefined;
      const now = performance.now();
      for (const entry of bucket.entries) {
        if ((entry.state & DONE) !== 0) continue;
        entry.state |= ENDED;
        entry.endedAt = now;
        entry.bucket = undefined;
        // Settled and unobserved (an observed settled entry is DONE already).
        if ((entry.state & SETTLED) !== 0) this.#floating(entry, now);
        else this.#watch.push(entry);
      }
    } catch (error) {
      this.#fail('scopeEnded failed', error);
    }
  }

  stats(): PromiseTrackerStats {
    return {
      mode: this.#o.mode,
      tracked: this.#tracked,
      maxTracked: this.#max,
      dropped: this.#dropped,
      sampling: this.#capturing,
      windows: this.#windows,
      reported: { ...this.#reported },
      suppressed: { ...this.#suppressed },
    };
  }

  /** @internal detach(): the promise, or the chain it ends, is intended fire-and-forget. */
  detach(promise: object): void {
    const rec = this.#records.get(promise);
    if (rec === undefined) return;
    const entry = rec instanceof Link ? rec.root : rec;
    entry.state |= DETACHED;
  }

  #openWindow(): void {
    if (!this.#running) return;
    this.#windows++;
    this.#capturing = true;
    if (this.#stopHooks === undefined)
      this.#stopHooks = promiseHooks.createHook({ init: this.#init, settled: this.#settled }) as () => void;
    if (this.#o.mode !== 'sampled') return;
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => this.#closeWindow(), this.#o.sampleWindowMs).unref();
  }

  /**
   * Stops tracking new promises. The hooks stay until the promises of the window are decided (their
   * requests ended and they settled, or leaked): turning them off earlier would miss the reactions
   * and settlements that tell a floating promise from an observed one.
   */
  #closeWindow(): void {
    this.#capturing = false;
    this.#drainUntil = performance.now() + this.#o.leakAfterMs + this.#o.sampleWindowMs;
    if (this.#tracked === 0) this.#hooksOff();
  }

  #hooksOff(): void {
    this.#stopHooks?.();
    this.#stopHooks = undefined;
  }

  #sweep(): void {
    const now = performance.now();
    const watch = this.#watch;
    // One leak per request: the first pending promise it made is the outermost work (an async
    // function), the rest are what that work awaits (its timers, its queries).
    const leakedScopes = new Set<S>();
    let kept = 0;
    for (const entry of watch) {
      if ((entry.state & DONE) !== 0) continue;
      if ((entry.state & SETTLED) !== 0) {
        // Settled after its request ended, still unobserved.
        this.#floating(entry, now);
      } else if (now - entry.endedAt >= this.#o.leakAfterMs) {
        this.#retire(entry);
        if (leakedScopes.has(entry.scope)) continue;
        if ((entry.state & DETACHED) !== 0) {
          // Detached work covers what it awaits too.
          leakedScopes.add(entry.scope);
          continue;
        }
        const creation = describeCreation(entry.holder, this.#isUser);
        if (creation.pendingOwned) {
          leakedScopes.add(entry.scope);
          this.#report('leaked', entry.scope, creation, now - entry.createdAt);
        }
      } else {
        watch[kept++] = entry;
      }
    }
    watch.length = kept;
    if (now - this.#lastStaleCheck > 10_000) {
      this.#lastStaleCheck = now;
      this.#forgetStaleScopes(now);
    }
    if (!this.#capturing && this.#stopHooks !== undefined && (this.#tracked === 0 || now >= this.#drainUntil)) {
      // The window's promises are decided, or the drain took too long (requests that never end).
      this.#hooksOff();
      this.#abandon();
    }
  }

  #floating(entry: Entry<S>, now: number): void {
    this.#retire(entry);
    if ((entry.state & (DETACHED | UNHANDLED)) !== 0) return;
    const creation = describeCreation(entry.holder, this.#isUser);
    if (creation.floatingOwned) this.#report('floating', entry.scope, creation, now - entry.createdAt);
  }

  #forgetStaleScopes(now: number): void {
    // Map order is insertion order: the oldest buckets come first.
    for (const [scope, bucket] of this.#buckets) {
      if (now - bucket.createdAt < STALE_SCOPE_MS) break;
      this.#buckets.delete(scope);
      for (const entry of bucket.entries) if ((entry.state & DONE) === 0) this.#retire(entry);
    }
    this.#lastScope = this.#lastBucket = undefined;
  }

  /** Forgets every tracked promise without reporting it. */
  #abandon(): void {
    for (const bucket of this.#buckets.values()) for (const entry of bucket.entries) entry.state |= DONE;
    for (const entry of this.#watch) entry.state |= DONE;
    this.#buckets.clear();
    this.#watch = [];
    this.#ended = new WeakSet();
    this.#lastScope = this.#lastBucket = undefined;
    this.#tracked = 0;
  }

  #partitionOf(scope: S | undefined): string | number {
    const { partition } = this.#o;
    if (partition === undefined) return '';
    try {
      return partition(scope);
    } catch (error) {
      this.#fail('the partition option threw', error);
      return '';
    }
  }

  #report(kind: PromiseKind, scope: S | undefined, creation: Creation | undefined, ageMs: number, reason?: unknown): void {
    let site = creation?.site ?? '';
    let frames = creation?.frames ?? [];
    if (site === '' && kind === 'unhandled') ({ key: site, frames } = reasonSite(reason, scope, this.#isUser, this.#depth));
    const key = `${kind}|${this.#partitionOf(scope)}|${site}`;
    const now = performance.now();
    let entry = this.#sites.get(key);
    if (entry !== undefined && now - entry.at < REPORT_EVERY_MS) {
      entry.suppressed++;
      this.#suppressed[kind]++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    if (entry !== undefined) this.#sites.delete(key);
    else if (this.#sites.size >= MAX_SITES) {
      const oldest = this.#sites.keys().next().value;
      if (oldest !== undefined) this.#sites.delete(oldest);
    }
    entry = { at: now, suppressed: 0 };
    this.#sites.set(key, entry);
    this.#reported[kind]++;
    const report: TrackedPromiseReport<S> = { type: 'promise', kind, ageMs: Math.round(ageMs), suppressed, stack: frames };
    if (scope !== undefined) report.request = scope;
    if (kind === 'unhandled') report.reason = describeReason(reason);
    try {
      this.#o.onReport(report);
    } catch (error) {
      this.#fail('onReport threw', error);
    }
  }

  /**
   * Learns of unhandled rejections from Node's own 'unhandledRejection' emit, without listening to
   * it: a listener would change what the process does (no crash in the default mode, no warning in
   * 'warn' mode). The wrapper only looks, then calls the original with the same arguments.
   */
  #patchEmit(): void {
    const original = process.emit;
    let live = true;
    const tracker = this;
    const emit = function (this: unknown, event: string | symbol, ...args: unknown[]): boolean {
      if (live && event === 'unhandledRejection')
        tracker.#guard('unhandled rejection report failed', () => tracker.#unhandled(args[0], args[1]));
      return Reflect.apply(original, this, [event, ...args]) as boolean;
    };
    process.emit = emit as typeof process.emit;
    this.#unpatch = () => {
      live = false;
      // Someone wrapped emit after us: leave their wrapper in place, ours is a pass-through now.
      if (process.emit === (emit as typeof process.emit)) process.emit = original;
    };
  }

  #unhandled(reason: unknown, promise: unknown): void {
    if (reason === this.#lastUnhandled && reason !== undefined && typeof reason === 'object') return;
    this.#lastUnhandled = reason;
    const rec = typeof promise === 'object' && promise !== null ? this.#records.get(promise) : undefined;
    const entry = rec instanceof Link ? rec.root : rec;
    if (entry === undefined) {
      // Created while not tracking (outside a sampling window): Node runs this emit in the
      // promise's async context, so the scope is still known; the creation stack is not.
      const scope = this.#getScope();
      if (scope !== undefined) this.#report('unhandled', scope, undefined, 0, reason);
      return;
    }
    entry.state |= UNHANDLED;
    const creation = describeCreation(entry.holder, this.#isUser);
    this.#report('unhandled', entry.scope, creation, performance.now() - entry.createdAt, reason);
  }

  /** `--unhandled-rejections=strict` raises before emitting 'unhandledRejection': seen only here. */
  readonly #onUncaught = (error: unknown, origin: string): void => {
    if (origin !== 'unhandledRejection') return;
    const code = (error as { code?: unknown } | null)?.code;
    if (error === this.#lastUnhandled || (code === 'ERR_UNHANDLED_REJECTION' && this.#lastUnhandled !== undefined)) return;
    this.#guard('unhandled rejection report failed', () => {
      this.#lastUnhandled = error;
      const scope = this.#getScope();
      if (scope !== undefined) this.#report('unhandled', scope, undefined, 0, error);
    });
  };

  #guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#fail(what, error);
    }
  }

  #fail(what: string, error: unknown): void {
    try {
      this.#o.onError?.(what, error);
    } catch {
      // A broken error sink must not break the caller either.
    }
  }
}

/**
 * Creates a tracker of floating, leaked and unhandled promises created inside a scope. It is what
 * `createMonitor({ promises })` composes; use it directly to track promises without the monitor.
 *
 * @example
 * const tracker = createPromiseTracker({ mode: 'full', getScope: () => als.getStore(), onReport: (r) => log.warn(r) });
 * tracker.start();
 * // when a request ends: tracker.scopeEnded(scope)
 */
export function createPromiseTracker<S extends object>(options: PromiseTrackerOptions<S>): PromiseTracker<S> {
  return new Tracker<S>(options);
}
