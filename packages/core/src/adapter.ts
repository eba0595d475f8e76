import { createMonitor, HELD_WEAKLY, type Monitor } from './monitor.js';
import type { MonitorOptions } from './types.js';

/** What every adapter accepts: monitor options, or `{ monitor }` to share one Monitor between apps. */
export interface AdapterOptions extends MonitorOptions {
  monitor?: Monitor;
}

function isMonitor(value: unknown): value is Monitor {
  // Duck-typed: the ESM and CJS builds each have their own Monitor class.
  const m = value as Partial<Monitor> | null;
  return (
    typeof m === 'object' && m !== null && typeof m.start === 'function' && typeof m._begin === 'function' && typeof m.options === 'object'
  );
}

/**
 * The monitor an adapter uses, and whether the adapter owns it (and so stops it on close).
 * A shared monitor comes alone: its options were fixed when it was created.
 */
export function monitorFor(options: AdapterOptions | undefined): { monitor: Monitor; owned: boolean } {
  if (options === undefined || options === null || options.monitor === undefined) {
    // Nobody stops the monitor of an Express or Koa app: it must go when its app goes, so that a
    // test suite that builds an app per test does not keep a thousand of them.
    const monitor = createMonitor(options);
    monitor[HELD_WEAKLY] = true;
    return { monitor, owned: true };
  }
  const { monitor, ...rest } = options;
  if (!isMonitor(monitor)) throw new TypeError('loopsight: options.monitor must be a Monitor from createMonitor()');
  const extra = Object.keys(rest);
  if (extra.length > 0) {
    throw new TypeError(
      `loopsight: options.monitor cannot be combined with other options (got ${extra.join(', ')}); configure the shared monitor when you create it`,
    );
  }
  return { monitor, owned: false };
}
