import diagnosticsChannel from 'node:diagnostics_channel';
import type { Server } from 'node:http';
import { isMainThread } from 'node:worker_threads';
import type { Monitor } from '@loopsight/core';
import { BOOLEANS, readConfig } from './env.js';
import { earlyStalls, otelWhenRegistered, serveMetrics } from './exporters.js';
import { watchHttp } from './http.js';
import { load } from './load.js';

interface Shared {
  monitor: Monitor | undefined;
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
  return holder[KEY]?.monitor;
}

/** LOOPSIGHT_ENABLED, read before anything is loaded; a bad value is said by readConfig. */
function enabled(): boolean {
  const raw = process.env.LOOPSIGHT_ENABLED?.trim().toLowerCase();
  return raw === undefined || raw === '' || BOOLEANS[raw] !== false;
}

/** Whether a server that listens is the application's HTTP server (not a cluster primary's handle, not ours). */
function isHttpServer(server: unknown): boolean {
  if (typeof server !== 'object' || server === null) return false;
  const http = load.http();
  return server instanceof http.Server || server instanceof load.https().Server;
}

/** Starts loopsight for the whole process, from the environment. Never throws. */
export function start(): void {
  if (holder[KEY] !== undefined) return;
  const shared: Shared = { monitor: undefined };
  holder[KEY] = shared;
  if (!enabled()) return;
  try {
    // Workers inherit the preload through execArgv: the main thread has said what was wrong already.
    const config = readConfig(process.env, isMainThread ? warn : () => {});
    if (!config.enabled) return;
    const { createMonitor } = load.core();
    let monitor: Monitor;
    try {
      monitor = createMonitor(config.monitor);
    } catch (error) {
      // readConfig checked each value; a combination core still refuses falls back to the defaults.
      warn(
        `loopsight: the LOOPSIGHT_* settings were refused (${error instanceof Error ? error.message : String(error)}); the defaults apply`,
      );
      monitor = createMonitor();
    }
    if (!isMainThread) {
      // A worker: its monitor only. The process's watchdog thread watches it, and its figures reach
      // the main thread's exporters under a `thread` label; the metrics port and the OTel SDK are the
      // main thread's (docs/loop-lag.md, "Worker threads").
      watchHttp(monitor, () => undefined);
      monitor.start();
      shared.monitor = monitor;
      return;
    }
    // The process serves from its first HTTP listen(): stalls that began before are its startup, and
    // only a process that serves binds the metrics port (never npm, a process manager or a launcher
    // script that inherited NODE_OPTIONS). prom-client is loaded then too.
    const startedAt = Date.now();
    let servingSince = Number.POSITIVE_INFINITY;
    let metricsServer: Server | undefined;
    const early = config.metrics === undefined ? undefined : earlyStalls(monitor);
    const onListen = (message: unknown) => {
      try {
        const server = (message as { server?: unknown }).server;
        if (server === metricsServer || !isHttpServer(server)) return;
        diagnosticsChannel.unsubscribe(LISTEN, onListen);
        servingSince = Date.now();
        if (config.metrics !== undefined) metricsServer = serveMetrics(monitor, config.metrics, warn, early);
      } catch (error) {
        monitor.reportError('starting the metrics server failed', error);
      }
    };
    diagnosticsChannel.subscribe(LISTEN, onListen);
    load.internal().internals(monitor).servingSince = () => Math.min(servingSince, startedAt + STARTUP_MAX_MS);
    const otelCheck = config.otel === 'auto' ? otelWhenRegistered(monitor, warn) : undefined;
    watchHttp(monitor, () => metricsServer, otelCheck);
    monitor.start();
    shared.monitor = monitor;
  } catch (error) {
    warn(`loopsight: the preload did not start: ${error instanceof Error ? error.message : String(error)}`);
  }
}
