export { expectBlocking } from '@loopsight/loop-lag';
export type { PromiseTrackerStats } from '@loopsight/promises';
export { detach, isUserFrame } from '@loopsight/promises';
export type { AdapterOptions } from './adapter.js';
export { CHANNELS } from './channels.js';
export { traceIdOf } from './incoming.js';
export { createMonitor } from './monitor.js';
export { ROUTE_NONE, ROUTE_OTHER, ROUTE_STARTUP, ROUTE_UNKNOWN, ROUTE_UNROUTED } from './routes.js';
export { currentScope } from './store.js';
export type {
  BackpressureCounts,
  BackpressureOptions,
  BackpressureReport,
  ConnectionCounts,
  CorrelationOptions,
  ExpectedStalls,
  Exporter,
  Health,
  Logger,
  LoopDelayHistogram,
  LoopLagOptions,
  LoopStats,
  Monitor,
  MonitorCounters,
  MonitorOptions,
  OutboundOptions,
  PromiseOptions,
  PromiseReport,
  RejectReason,
  Report,
  RequestRecord,
  RequestScope,
  RequestSource,
  ShedInfo,
  ShedOptions,
  ShedReason,
  ShedResponse,
  StackFrame,
  StallReport,
} from './types.js';
