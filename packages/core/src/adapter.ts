import { checkKeys, isPlainObject, LoopsightTypeError } from '@loopsight/options';
import { createMonitor, internals, internalsOf } from './monitor.js';
import { TOP_LEVEL } from './options.js';
import type { Monitor, MonitorOptions } from './types.js';

/** What every adapter accepts: monitor options, or `{ monitor }` to share one Monitor between apps. */
export interface AdapterOptions extends MonitorOptions {
  monitor?: Monitor;
}

/**
 * The monitor an adapter uses, and whether the adapter owns it (and so stops it on close).
 * A shared monitor comes alone: its options were fixed when it was created.
 */
export function monitorFor(options: AdapterOptions | undefined): { monitor: Monitor; owned: boolean } {
  // `monitor` is an adapter's option too: a typo of it is named against every name an adapter takes.
  if (isPlainObject(options)) checkKeys('', options, [...TOP_LEVEL, 'monitor']);
  if (options === undefined || options === null || options.monitor === undefined) {
    // Nobody stops the monitor of an Express or Koa app: it must go when its app goes, so that a
    // test suite that builds an app per test does not keep a thousand of them.
    const monitor = createMonitor(options);
    internals(monitor).heldWeakly = true;
    return { monitor, owned: true };
  }
  const { monitor, ...rest } = options;
  // Recognized by its internals: the ESM and CJS builds (or two copies of core) each have their own class.
  if (internalsOf(monitor) === undefined) {
    throw new LoopsightTypeError('ERR_LOOPSIGHT_NOT_A_MONITOR', 'loopsight: options.monitor must be a Monitor from createMonitor()', {
      path: 'monitor',
    });
  }
  const extra = Object.keys(rest);
  if (extra.length > 0) {
    throw new LoopsightTypeError(
      'ERR_LOOPSIGHT_INVALID_OPTION',
      `loopsight: options.monitor cannot be combined with other options (got ${extra.join(', ')}); configure the shared monitor when you create it`,
    );
  }
  return { monitor, owned: false };
}
