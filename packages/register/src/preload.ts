import { isMainThread } from 'node:worker_threads';
import { createMonitor, type Monitor } from '@loopsight/core';
import { readConfig } from './env.js';
import { otelWhenRegistered, serveMetrics } from './exporters.js';
import { watchHttp } from './http.js';

interface Shared {
  monitor: Monitor | undefined;
}

// One preload per process: `--import` loads the ESM build and an application may require() the
// CommonJS one (or both flags are given); the second copy finds the first's state and does nothing.
const KEY = Symbol.for('loopsight.register.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: Shared };

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

/** Starts loopsight for the whole process, from the environment. Never throws. */
export function start(): void {
  if (holder[KEY] !== undefined) return;
  const shared: Shared = { monitor: undefined };
  holder[KEY] = shared;
  try {
    // Workers inherit the preload through execArgv: the main thread has said what was wrong already.
    const config = readConfig(process.env, isMainThread ? warn : () => {});
    if (!config.enabled) return;
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
    // prom-client is loaded before the watchdog starts: loading modules is the process's startup,
    // not a stall to report (it took 600 ms on a loaded 2-core machine).
    const metricsServer = config.metrics === undefined ? undefined : serveMetrics(monitor, config.metrics, warn);
    const otelCheck = config.otel === 'auto' ? otelWhenRegistered(monitor, warn) : undefined;
    watchHttp(monitor, () => metricsServer, otelCheck);
    monitor.start();
    shared.monitor = monitor;
  } catch (error) {
    warn(`loopsight: the preload did not start: ${error instanceof Error ? error.message : String(error)}`);
  }
}
