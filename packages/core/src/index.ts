export { detach, isUserFrame } from '@loopsight/promises';
export { type AdapterOptions, monitorFor } from './adapter.js';
export { type RouteResolver, trackRequest } from './http.js';
export { createMonitor, Monitor } from './monitor.js';
export { DEFAULT_ID_PATTERN, generateId, type IdSink, idRefusal, MAX_ID_LENGTH } from './options.js';
export { ROUTE_NONE, ROUTE_OTHER, ROUTE_UNKNOWN, ROUTE_UNROUTED, routeLabeler } from './routes.js';
export { currentScope, runInScope } from './store.js';
export type {
  CorrelationOptions,
  Exporter,
  Logger,
  LoopDelayHistogram,
  LoopLagOptions,
  LoopStats,
  MonitorCounters,
  MonitorLike,
  MonitorOptions,
  PromiseOptions,
  PromiseReport,
  RejectReason,
  Report,
  RequestRecord,
  RequestScope,
  ResolvedCorrelation,
  ResolvedOptions,
  StackFrame,
  StallReport,
} from './types.js';
