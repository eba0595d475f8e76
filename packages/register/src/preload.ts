import type { Server } from 'node:http';
import type { Monitor, StallReport } from '@loopsight/core';
import { BOOLEANS, coded, type RegisterConfig, readConfig } from './env.js';
import { earlyStalls, otelWhenRegistered, serveMetrics } from './exporters.js';
import { watchHttp } from './http.js';
import { load } from './load.js';

interface Shared {
  monitor: Monitor | undefined;
  /** Starts the monitor now if it is still waiting for the process to serve. */
  startNow: (() => void) | undefined;
}

// One preload per process: `--import` loads the ESM build and an application may require() the
// CommonJS one (or both flags are given); the second copy finds the first's state and does nothing.
const KEY = Symbol.for('loopsight.register.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: Shared };

/** Published synchronously by every `net.Server#listen()` (Node 20 to 26): the process begins to serve. */
const LISTEN = 'tracing:net.server.listen:asyncStart';
/**
 * A process that has not listened this long after the preload started is past its startup (a queue
 * consumer, a script): its stalls are incidents again. Module loading takes well under this.
 */
const STARTUP_MAX_MS = 10_000;
/**
 * The monitor of a process that has not served starts this long after the preload: short-lived
 * processes that inherit NODE_OPTIONS (npm, build tools, `node -e`) exit before and load nothing.
 */
const START_WITHOUT_SERVING_MS = 2_000;
/** The startup heartbeat, until the monitor runs: a gap beyond its interval is a stall to report then. */
const BEAT_MS = 10;
/** Startup gaps kept (the longest win), and the shortest kept: the lowest stall threshold is 10 ms. */
const MAX_GAPS = 16;
const MIN_GAP_MS = 10;

interface Gap {
  at: number;
  durationMs: number;
}

/**
 * Times the loop before the monitor runs, for nothing but the price of a timer: the stalls of
 * module loading, reported once the monitor starts (without a stack: no watchdog watched them).
 * `flush` hands over the gaps seen so far, including the one in progress, on the next beat.
 */
function startupBeat(): { flush(deliver: (gaps: Gap[]) => void): void } {
  const gaps: Gap[] = [];
  let last = Date.now();
  let onNext: ((gaps: Gap[]) => void) | undefined;
  const timer = setInterval(() => {
    const now = Date.now();
    const late = now - last - BEAT_MS;
    if (late >= MIN_GAP_MS) {
      gaps.push({ at: last, durationMs: late });
      gaps.sort((a, b) => b.durationMs - a.durationMs);
      gaps.length = Math.min(gaps.length, MAX_GAPS);
    }
    last = now;
    if (onNext === undefined) return;
    clearInterval(timer);
    onNext(gaps.sort((a, b) => a.at - b.at));
  }, BEAT_MS);
  timer.unref();
  return {
    flush(deliver) {
      onNext = deliver;
    },
  };
}

const warn = (line: string) => {
  try {
    process.stderr.write(`${line}\n`);
  } catch {
    // stderr closed: nothing else to tell.
  }
};

/**
 * The Monitor the preload started (`node --import @loopsight/register`), in the main thread or
 * in a worker thread, or undefined: not preloaded, or LOOPSIGHT_ENABLED=false. Listen to it, or share it with an
 * adapter (`loopsight({ monitor: preloadMonitor() })`).
 *
 * @example
 * import { preloadMonitor } from '@loopsight/register';
 * preloadMonitor()?.on('stall', (r) => log.warn(r, 'event loop blocked'));
 */
export function preloadMonitor(): Monitor | undefined {
  const shared = holder[KEY];
  // Asked for: started now if it was waiting for the process to serve (see start()).
  shared?.startNow?.();
  return shared?.monitor;
}

/** LOOPSIGHT_ENABLED, read before anything is loaded; a bad value is said by readConfig. */
function enabled(): boolean {
  const raw = process.env.LOOPSIGHT_ENABLED?.trim().toLowerCase();
  return raw === undefined || raw === '' || BOOLEANS[raw] !== false;
}

/**
 * Whether a server that listens is an HTTP server: `node:http`, `node:https`, or one with a
 * 'request' or 'stream' listener (`node:http2`). Not the plain `net.Server` a cluster primary opens
 * for its workers' shared port, nor a TCP server of the application's.
 */
function isHttpServer(server: unknown): boolean {
  if (typeof server !== 'object' || server === null) return false;
  if (server instanceof load.http().Server || server instanceof load.https().Server) return true;
  const emitter = server as { listenerCount?: (event: string) => number };
  return typeof emitter.listenerCount === 'function' && emitter.listenerCount('request') + emitter.listenerCount('stream') > 0;
}

/**
 * Starts loopsight for the whole process, from the environment. Never throws. Nothing is loaded
 * until it is needed (docs/preload.md, "What it costs"): the monitor starts when the process first
 * listens on an HTTP server, when `preloadMonitor()` is called, or 2 s after start, whichever comes
 * first; until then a timer times the loop, and its stalls are reported as the startup's.
 */
export function start(): void {
  if (holder[KEY] !== undefined) return;
  const shared: Shared = { monitor: undefined, startNow: undefined };
  holder[KEY] = shared;
  if (!enabled()) return;
  if (!load.threads().isMainThread) {
    // A worker: its monitor at once (its thread was started by a process that runs), and only that.
    // The process's watchdog thread watches it, and its figures reach the main thread's exporters
    // under a `thread` label; the metrics port and the OTel SDK are the main thread's (docs/loop-lag.md,
    // "Worker threads"). The main thread has said what was wrong with the variables already.
    guarded(() => {
      const monitor = createFromEnv(() => {});
      if (monitor === undefined) return;
      watchHttp(monitor, () => undefined);
      monitor.start();
      shared.monitor = monitor;
    });
    return;
  }
  const diagnosticsChannel = load.channels();
  const startedAt = Date.now();
  // The process serves from its first HTTP listen(): stalls that began before are its startup, and
  // only a process that serves binds the metrics port (never npm, a process manager or a launcher
  // script that inherited NODE_OPTIONS).
  let servingSince = Number.POSITIVE_INFINITY;
  let metricsServer: Server | undefined;
  let serve: (() => void) | undefined;
  const beat = startupBeat();
  const startNow = () => {
    shared.startNow = undefined;
    clearTimeout(timer);
    guarded(() => {
      const monitor = createFromEnv(warn);
      if (monitor === undefined) return;
      const { internals } = load.adapterKit();
      internals(monitor).servingSince = () => Math.min(servingSince, startedAt + STARTUP_MAX_MS);
      const config = configOf(monitor);
      const early = config.metrics === undefined ? undefined : earlyStalls(monitor);
      serve = () => {
        serve = undefined;
        if (config.metrics !== undefined) metricsServer = serveMetrics(monitor, config.metrics, warn, early);
      };
      if (servingSince !== Number.POSITIVE_INFINITY) serve();
      const otelCheck = config.otel === 'auto' ? otelWhenRegistered(monitor, warn) : undefined;
      watchHttp(monitor, () => metricsServer, otelCheck);
      monitor.start();
      shared.monitor = monitor;
      // From here the watchdog times the loop, once its thread is up (tens of ms, more on a loaded
      // machine): a gap that ran on past this point is reported by the preload only if the
      // watchdog did not report it within a second.
      const watchedFrom = Date.now();
      const lagLimit = internals(monitor).options.loopLag;
      beat.flush((gaps) => {
        if (lagLimit === false) return;
        const report = (at: number, durationMs: number) =>
          internals(monitor).report({
            type: 'stall',
            at,
            durationMs,
            stack: [],
            stackSource: 'none',
            stackSkipped: 'unavailable',
            inflight: 0,
          });
        const seen: StallReport[] = [];
        const note = (r: StallReport) => seen.push(r);
        const pending = gaps.filter((gap) => gap.durationMs >= lagLimit.stallThresholdMs);
        for (const gap of pending) if (gap.at + gap.durationMs <= watchedFrom) report(gap.at, gap.durationMs);
        const later = pending.filter((gap) => gap.at + gap.durationMs > watchedFrom);
        if (later.length === 0) return;
        monitor.on('stall', note);
        setTimeout(() => {
          monitor.off('stall', note);
          for (const gap of later) {
            // The watchdog reports only what it watched: the gap up to its first report overlapping
            // the gap is the startup's. A stall that runs on from module loading into the monitor's
            // start (loading prom-client, the watchdog thread starting on a busy machine) is timed
            // by both; dropping the whole gap then lost the startup block.
            const end = gap.at + gap.durationMs;
            const watched = seen.filter((r) => r.at < end && r.at + r.durationMs > gap.at).reduce((first, r) => Math.min(first, r.at), end);
            if (watched - gap.at >= lagLimit.stallThresholdMs) report(gap.at, watched - gap.at);
          }
        }, 1_000).unref();
      });
    });
  };
  shared.startNow = startNow;
  const timer = setTimeout(startNow, START_WITHOUT_SERVING_MS);
  timer.unref();
  const onListen = (message: unknown) => {
    try {
      const server = (message as { server?: unknown }).server;
      if (server === metricsServer || !isHttpServer(server)) return;
      diagnosticsChannel.unsubscribe(LISTEN, onListen);
      servingSince = Date.now();
      shared.startNow?.();
      serve?.();
    } catch (error) {
      warn(
        coded(
          'LOOPSIGHT_PRELOAD',
          `loopsight: starting at the first listen() failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    }
  };
  diagnosticsChannel.subscribe(LISTEN, onListen);
}

/** The configuration a monitor was made from (kept for the steps that follow its start). */
const configs = new WeakMap<Monitor, RegisterConfig>();
const configOf = (monitor: Monitor) => configs.get(monitor) as RegisterConfig;

/** The monitor the LOOPSIGHT_* variables describe, or undefined when they disable it. */
function createFromEnv(say: (line: string) => void): Monitor | undefined {
  const config = readConfig(process.env, say);
  if (!config.enabled) return undefined;
  const { createMonitor } = load.core();
  let monitor: Monitor;
  try {
    monitor = createMonitor(config.monitor);
  } catch (error) {
    // readConfig checked each value; a combination core still refuses falls back to the defaults.
    say(
      coded(
        'LOOPSIGHT_PRELOAD',
        `loopsight: the LOOPSIGHT_* settings were refused (${error instanceof Error ? error.message : String(error)}); the defaults apply`,
      ),
    );
    monitor = createMonitor();
  }
  configs.set(monitor, config);
  return monitor;
}

function guarded(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    warn(coded('LOOPSIGHT_PRELOAD', `loopsight: the preload did not start: ${error instanceof Error ? error.message : String(error)}`));
  }
}
