/**
 * @packageDocumentation
 * What loopsight's adapters and its context package build on: a monitor per app, the HTTP request
 * path (`createHttpHandler`, `trackRequest`), a monitor's internals, scope entry and correlation-id
 * rules. Not public API: no stability promise, any release may change it; only loopsight's packages
 * of the same release are written against it. Applications use the root entry.
 */
export { monitorFor } from './adapter.js';
export type { WriterPort, WriterWatch } from './backpressure.js';
export { JOB_METHOD } from './exporting.js';
export {
  createAmbientHandler,
  createHttpHandler,
  type EnablePropagation,
  type HttpGlue,
  type HttpHandler,
  pathOf,
  propagation,
  type ShedAnswer,
} from './handler.js';
export { correlationHeaderNames } from './hub.js';
export { acceptIncoming } from './incoming.js';
export { type ConnectionCounter, internals, isThenable, type MonitorInternals } from './monitor.js';
export { idRefusal, OPTION_RULES, resolveOptions, scopeId } from './options.js';
export type { RouteResolver } from './request.js';
export { runInScope } from './store.js';
export type {
  ResolvedBackpressure,
  ResolvedCorrelation,
  ResolvedLoopLag,
  ResolvedOptions,
  ResolvedPromises,
  ResolvedShed,
} from './types.js';
