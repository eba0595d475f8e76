/**
 * The diagnostics_channel names loopsight publishes on; any tool can subscribe without importing
 * loopsight. `requestStart` carries the scope when a request or job begins, synchronously in the
 * context that began it (the adapter's middleware, the caller of monitor.run()): the OTel
 * exporter tags the active span there.
 */
export const CHANNELS = Object.freeze({
  request: 'loopsight:request',
  stall: 'loopsight:stall',
  promise: 'loopsight:promise',
  requestStart: 'loopsight:request:start',
  backpressure: 'loopsight:backpressure',
} as const);
