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
 * The Monitor the preload started (`node --import @loopsight/register`), or undefined: not
 * preloaded, LOOPSIGHT_ENABLED=false, or a worker thread. Listen to it, or share it with an
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
  // Workers inherit the preload through execArgv. The watchdog's inspector session reaches only
  // the main thread, and the metrics port is the process's: a worker starts nothing here.
  if (!isMainThread) return;
  try {
    const config = readConfig(process.env, warn);
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
