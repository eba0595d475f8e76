import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { ROUTE_OTHER } from './routes.js';

/**
 * How long fetch() calls waited for a connection, from the Resource Timing entries fetch reports
 * (Node's global fetch and the `undici` package's both do, whatever the dispatcher): the time from
 * the fetch's start (`fetchStart`, the last redirect's start for a redirected one) to the moment its
 * request began to go out on a connection (`requestStart`, set when undici hands the request to a
 * socket). That is the time queued behind the dispatcher's connection limit (a `Pool` with
 * `connections: 2`, an `Agent` with `connections`), plus opening a connection when the request had
 * to wait for a new one: undici reports no per-request connection timing to subtract it by.
 *
 * Why not undici's diagnostics channels: `undici:request:create` fires when a request leaves a
 * Pool's queue for one of its connections, not when it enters it (a Pool queues the dispatch
 * options, and the request object is made later), so create → `undici:client:sendHeaders` reads
 * about 0 for every request that queued in a Pool; measured, 10 fetches through a 2-connection
 * Pool to a 100 ms origin: the last two waited 440 ms, create → sendHeaders said under 1 ms.
 * Resource Timing carries both times on one entry: nothing is kept per request.
 */

/** One fetch's wait for a connection, as exporters record it: the origin's bounded label and the seconds. */
export interface OutboundWait {
  /** `scheme://host[:port]`, or `__other__` past the monitor's `outbound.maxOrigins`. */
  readonly origin: string;
  /** From the fetch's start to its request going out on a connection. */
  readonly seconds: number;
}

/** Called with the origin (`scheme://host[:port]`, as `URL#origin` spells it) and the wait, seconds. */
export type OutboundListener = (origin: string, seconds: number) => void;

interface Feed {
  readonly listeners: Set<OutboundListener>;
  observer: PerformanceObserver | undefined;
}

// One observer per process: the ESM and CJS builds (or two copies of core) share it.
const KEY = Symbol.for('loopsight.core.outbound.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: Feed };

function feed(): Feed {
  holder[KEY] ??= { listeners: new Set(), observer: undefined };
  return holder[KEY];
}

/** The origin of an http(s) URL, or undefined: a path or query never leaves this function. */
function originOf(url: string): string | undefined {
  if (!url.startsWith('http://') && !url.startsWith('https://')) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

interface ResourceEntry extends PerformanceEntry {
  readonly initiatorType: string;
  readonly fetchStart: number;
  readonly requestStart: number;
}

function onEntries(entries: readonly PerformanceEntry[]): void {
  const { listeners } = feed();
  if (listeners.size === 0) return;
  for (const entry of entries) {
    const e = entry as ResourceEntry;
    // Anyone may call performance.markResourceTiming(); fetch's entries say 'fetch'. A response
    // that never reached the network (opaque timing) has no requestStart.
    if (e.initiatorType !== 'fetch' || !(e.requestStart > 0) || e.requestStart < e.fetchStart) continue;
    const origin = originOf(e.name);
    if (origin === undefined) continue;
    const seconds = (e.requestStart - e.fetchStart) / 1000;
    for (const listener of listeners) {
      try {
        listener(origin, seconds);
      } catch {
        // The monitor's listener contains its own failures; nothing else subscribes.
      }
    }
  }
}

/**
 * Subscribes to the process's fetch waits; the first subscriber starts the observer, the last one
 * to leave stops it. Listeners must not throw (the monitor's contains its exporters). Returns the
 * unsubscribe function, idempotent. Throws if the observer cannot be started.
 */
export function observeFetchWaits(listener: OutboundListener): () => void {
  const f = feed();
  if (f.observer === undefined) {
    // Throws where 'resource' entries are not supported: the caller contains it, and nothing is left behind.
    const observer = new PerformanceObserver((list) => onEntries(list.getEntries()));
    observer.observe({ entryTypes: ['resource'] });
    f.observer = observer;
  }
  f.listeners.add(listener);
  return () => {
    if (!f.listeners.delete(listener) || f.listeners.size > 0) return;
    f.observer?.disconnect();
    f.observer = undefined;
  };
}

/** Whether the process's observer runs (tests: stop() lets go of it). */
export function outboundObserving(): boolean {
  return feed().observer !== undefined;
}

/**
 * Maps an origin to a bounded label: past `maxOrigins` distinct origins, every new one is counted
 * under `__other__`, so a service that calls thousands of hosts keeps a bounded series count.
 */
export function originLabeler(maxOrigins: number): (origin: string) => string {
  const seen = new Set<string>();
  return (origin) => {
    if (seen.has(origin)) return origin;
    if (seen.size >= maxOrigins) return ROUTE_OTHER;
    seen.add(origin);
    return origin;
  };
}
