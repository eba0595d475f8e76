import { performance } from 'node:perf_hooks';
// A namespace import: a runtime without promiseHooks (Deno) must still load this module; start() then fails, reported once.
import * as v8 from 'node:v8';
import { LoopsightError, warning } from '@loopsight/options';
import { register, unregister } from './detach.js';
import { observeUnhandledRejections } from './emit.js';
import { type ResolvedTrackerOptions, resolveTrackerOptions } from './options.js';
import { Bucket, DETACHED, DONE, ENDED, Entry, Link, SETTLED, UNHANDLED } from './records.js';
import { describeReason, reasonSite, SiteLimiter } from './report.js';
import { type Creation, capture, describeCreation, isUserFrame } from './stack.js';
import type {
  PromiseKind,
  PromiseKindCounts,
  PromiseTracker,
  PromiseTrackerOptions,
  PromiseTrackerStats,
  TrackedPromiseReport,
} from './types.js';

/** A scope that never ended (a context opened without the monitor) is forgotten after this long. */
const STALE_SCOPE_MS = 10 * 60_000;

const zeroCounts = (): PromiseKindCounts => ({ floating: 0, leaked: 0, unhandled: 0 });

class Tracker<S extends object> implements PromiseTracker<S> {
  readonly #options: ResolvedTrackerOptions<S>;
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
  readonly #limiter = new SiteLimiter();
  readonly #reported = zeroCounts();
  readonly #suppressed = zeroCounts();

  #filterFailed = false;
  /**
   * The frame filter, contained: it runs in the sweep and in scopeEnded(), where a throw used to
   * abandon the rest of a request's promises still counted as tracked, so maxTracked filled up for
   * good. A throwing filter counts the frame as the application's only if the default would.
   */
  readonly #isUser = (url: string): boolean => {
    try {
      return this.#options.frameFilter(url) === true;
    } catch (error) {
      if (!this.#filterFailed) {
        this.#filterFailed = true;
        this.#fail('promises.frameFilter threw', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'promises.frameFilter' }));
      }
      return isUserFrame(url);
    }
  };

  constructor(options: PromiseTrackerOptions<S>) {
    this.#options = resolveTrackerOptions(options);
    this.#getScope = this.#options.getScope;
    this.#depth = this.#options.stackDepth;
    this.#max = this.#options.maxTracked;
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
      this.#fail('the promise init hook failed', warning('LOOPSIGHT_PROMISE_TRACKER', error, { site: 'init' }));
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
    this.#guard('the sweep failed', 'sweep', () => this.#sweep());
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
    this.#unpatch = observeUnhandledRejections((reason, promise) =>
      this.#guard('unhandled rejection report failed', 'unhandled', () => this.#unhandled(reason, promise)),
    );
    process.on('uncaughtExceptionMonitor', this.#onUncaught);
    const sweepMs = Math.min(1_000, Math.max(20, this.#options.leakAfterMs / 5));
    this.#sweepTimer = setInterval(() => this.#guard('the sweep failed', 'sweep', () => this.#sweep()), sweepMs).unref();
    this.#openWindow();
    if (this.#options.mode === 'sampled') {
      this.#windowTimer = setInterval(
        () => this.#guard('a sampling window failed to open', 'window', () => this.#openWindow()),
        this.#options.sampleIntervalMs,
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
    this.#limiter.clear();
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
      this.#fail('scopeEnded failed', warning('LOOPSIGHT_PROMISE_TRACKER', error, { site: 'scopeEnded' }));
    }
  }

  stats(): PromiseTrackerStats {
    return {
      mode: this.#options.mode,
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
    if (this.#stopHooks === undefined) {
      if (v8.promiseHooks === undefined) {
        throw new LoopsightError('ERR_LOOPSIGHT_UNSUPPORTED_RUNTIME', 'node:v8 promiseHooks is not available on this runtime');
      }
      this.#stopHooks = v8.promiseHooks.createHook({ init: this.#init, settled: this.#settled }) as () => void;
    }
    if (this.#options.mode !== 'sampled') return;
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => this.#closeWindow(), this.#options.sampleWindowMs).unref();
  }

  /**
   * Stops tracking new promises. The hooks stay until the promises of the window are decided (their
   * requests ended and they settled, or leaked): turning them off earlier would miss the reactions
   * and settlements that tell a floating promise from an observed one.
   */
  #closeWindow(): void {
    this.#capturing = false;
    this.#drainUntil = performance.now() + this.#options.leakAfterMs + this.#options.sampleWindowMs;
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
      } else if (now - entry.endedAt >= this.#options.leakAfterMs) {
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
    const { partition } = this.#options;
    if (partition === undefined) return '';
    try {
      return partition(scope);
    } catch (error) {
      this.#fail('the partition option threw', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'promises.partition' }));
      return '';
    }
  }

  #report(kind: PromiseKind, scope: S | undefined, creation: Creation | undefined, ageMs: number, reason?: unknown): void {
    let site = creation?.site ?? '';
    let frames = creation?.frames ?? [];
    if (site === '' && kind === 'unhandled') ({ key: site, frames } = reasonSite(reason, scope, this.#isUser, this.#depth));
    const suppressed = this.#limiter.admit(`${kind}|${this.#partitionOf(scope)}|${site}`, performance.now());
    if (suppressed === undefined) {
      this.#suppressed[kind]++;
      return;
    }
    this.#reported[kind]++;
    const report: TrackedPromiseReport<S> = { type: 'promise', kind, ageMs: Math.round(ageMs), suppressed, stack: frames };
    if (scope !== undefined) report.request = scope;
    if (kind === 'unhandled') report.reason = describeReason(reason);
    try {
      this.#options.onReport(report);
    } catch (error) {
      this.#fail('onReport threw', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'promises.onReport' }));
    }
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
    this.#guard('unhandled rejection report failed', 'unhandled', () => {
      this.#lastUnhandled = error;
      const scope = this.#getScope();
      if (scope !== undefined) this.#report('unhandled', scope, undefined, 0, error);
    });
  };

  #guard(what: string, site: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#fail(what, warning('LOOPSIGHT_PROMISE_TRACKER', error, { site }));
    }
  }

  #fail(what: string, error: unknown): void {
    try {
      this.#options.onError?.(what, error);
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
