/**
 * @packageDocumentation
 * The kit loopsight's own packages share: adapters (the HTTP glue, a monitor's internals) and
 * exporters (route labels, the metric catalog, one stall subscription, per-reason counts). Public
 * contracts (CHANNELS, the ROUTE_* label values, traceIdOf) are on the root entry. Not public API: no
 * stability promise, any release may change it. Build on the root entry instead.
 */
export { monitorFor } from './adapter.js';
export {
  type CountedJob,
  type CountedStall,
  DEFAULT_MAX_ROUTES,
  JOB_BUCKETS_SECONDS,
  JOB_METHOD,
  METRICS,
  type MetricSpec,
  type ReportLabels,
  reasonCounts,
  reportLabels,
  STALL_BUCKETS_SECONDS,
  type StallCounter,
  sheds,
  subscribeJobs,
  subscribeStalls,
} from './exporting.js';
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
export { correlationHeaderNames, threadFeed } from './hub.js';
export { internals, type MonitorInternals } from './monitor.js';
export { DEFAULT_ID_PATTERN, idRefusal, OPTION_RULES, positiveInteger, resolveOptions, scopeId } from './options.js';
export { HttpScope, type RouteResolver, trackRequest } from './request.js';
export { runInScope } from './store.js';
export type { ThreadEvent, ThreadFeed, ThreadInfo, ThreadSnapshot } from './thread-feed.js';
export type {
  ResolvedCorrelation,
  ResolvedLoopLag,
  ResolvedOptions,
  ResolvedPromises,
  ResolvedShed,
} from './types.js';
