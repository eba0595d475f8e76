/**
 * @packageDocumentation
 * The kit loopsight's own packages share: adapters (the HTTP glue, a monitor's internals) and
 * exporters (channel names, route labels, stall buckets, per-reason counts). Not public API: no
 * stability promise, any release may change it. Build on the root entry instead.
 */
export { monitorFor } from './adapter.js';
export { CHANNELS } from './channels.js';
export {
  type CountedStall,
  DEFAULT_MAX_ROUTES,
  METRICS,
  type MetricSpec,
  type ReportLabels,
  reasonCounts,
  reportLabels,
  STALL_BUCKETS_SECONDS,
  type StallCounter,
  sheds,
  subscribeStalls,
} from './exporting.js';
export {
  createAmbientHandler,
  createHttpHandler,
  type EnablePropagation,
  type HttpGlue,
  type HttpHandler,
  pathOf,
  type ShedAnswer,
} from './handler.js';
export { correlationHeaderNames, threadFeed } from './hub.js';
export { traceIdOf } from './incoming.js';
export { internals, type MonitorInternals } from './monitor.js';
export { DEFAULT_ID_PATTERN, idRefusal, OPTION_RULES, positiveInteger, resolveOptions } from './options.js';
export { type RouteResolver, trackRequest } from './request.js';
export { ROUTE_NONE, ROUTE_OTHER, ROUTE_STARTUP, ROUTE_UNKNOWN, ROUTE_UNROUTED } from './routes.js';
export { runInScope } from './store.js';
export type { ThreadEvent, ThreadFeed, ThreadInfo, ThreadSnapshot } from './threads.js';
export type {
  ResolvedCorrelation,
  ResolvedLoopLag,
  ResolvedOptions,
  ResolvedPromises,
  ResolvedShed,
} from './types.js';
