// Names in one place: the semantic conventions where they exist, `loopsight.*` for the rest.

import { METRICS } from '@loopsight/core/exporter';

/** Instrumentation scope of every meter and tracer. */
export const SCOPE_NAME = '@loopsight/otel';
declare const __LOOPSIGHT_VERSION__: string;
/** The package's own version, stamped in by the build. */
export const SCOPE_VERSION = __LOOPSIGHT_VERSION__;

// Semantic conventions (Node.js runtime metrics, development status).
export const EVENTLOOP_DELAY = {
  min: 'nodejs.eventloop.delay.min',
  max: 'nodejs.eventloop.delay.max',
  mean: 'nodejs.eventloop.delay.mean',
  stddev: 'nodejs.eventloop.delay.stddev',
  p50: 'nodejs.eventloop.delay.p50',
  p90: 'nodejs.eventloop.delay.p90',
  p99: 'nodejs.eventloop.delay.p99',
} as const;
export const EVENTLOOP_UTILIZATION = METRICS.utilization.otel;

// loopsight's own, from core's catalog: the same meaning and help as the Prometheus exporter's.
export const METRIC_STALLS = METRICS.stalls.otel;
export const METRIC_STALL_DURATION = METRICS.stallDuration.otel;
export const METRIC_PROMISES = METRICS.promises.otel;
export const METRIC_INFLIGHT = METRICS.inflight.otel;
export const METRIC_REJECTED = METRICS.rejected.otel;
export const METRIC_SHED = METRICS.shed.otel;
export const METRIC_CONNECTIONS_OPEN = METRICS.connectionsOpen.otel;
export const METRIC_CONNECTIONS_OPENED = METRICS.connectionsOpened.otel;
export const METRIC_CONNECTIONS_CLOSED = METRICS.connectionsClosed.otel;
export const METRIC_JOBS = METRICS.jobs.otel;
export const METRIC_JOB_DURATION = METRICS.jobDuration.otel;
// --- backpressure ---
export const METRIC_DRAIN_WAIT = METRICS.drainWait.otel;
export const METRIC_BACKPRESSURE = METRICS.backpressure.otel;
export const METRIC_BACKPRESSURE_BUFFERED = METRICS.backpressureBuffered.otel;
/** On the backpressure counter: `ignored` or `slow-consumer`. */
export const ATTR_BACKPRESSURE_KIND = 'loopsight.backpressure.kind';
// --- end backpressure ---
/** Outbound queueing (docs/outbound.md). */
export const METRIC_OUTBOUND_QUEUE_WAIT = METRICS.outboundQueueWait.otel;

// Attributes.
export const ATTR_HTTP_ROUTE = 'http.route';
export const ATTR_CODE_STACKTRACE = 'code.stacktrace';
export const ATTR_CODE_FUNCTION_NAME = 'code.function.name';
export const ATTR_CODE_FILE_PATH = 'code.file.path';
export const ATTR_CODE_LINE_NUMBER = 'code.line.number';
export const ATTR_CODE_COLUMN_NUMBER = 'code.column.number';
export const ATTR_CORRELATION_ID = 'loopsight.correlation_id';
export const ATTR_REASON = 'loopsight.reason';
/** Semantic conventions: the worker thread a figure is of. */
export const ATTR_THREAD_ID = 'thread.id';
export const ATTR_THREAD_NAME = 'thread.name';
/** Queue jobs (@loopsight/bullmq): the job's name, bounded like routes, and `completed` or `failed`. */
export const ATTR_JOB_NAME = 'loopsight.job.name';
export const ATTR_JOB_OUTCOME = 'loopsight.job.outcome';
/** The origin a fetch() was made to (`scheme://host[:port]`), bounded like routes (`__other__`). */
export const ATTR_OUTBOUND_ORIGIN = 'loopsight.outbound.origin';
export const ATTR_PROMISE_KIND = 'loopsight.promise.kind';
export const ATTR_PROMISE_AGE = 'loopsight.promise.age_ms';
export const ATTR_STALL_DURATION = 'loopsight.stall.duration_ms';
/** On the stalls counter: the stall was declared with expectBlocking() or loopLag.expected. */
export const ATTR_STALL_EXPECTED = 'loopsight.stall.expected';
/** On the stalls counter and stall spans, only when set: `startup`, a stall before the process served. */
export const ATTR_STALL_PHASE = 'loopsight.stall.phase';
export const ATTR_STACK_SOURCE = 'loopsight.stall.stack_source';
export const ATTR_INFLIGHT = 'loopsight.stall.inflight';

// Spans and events.
export const SPAN_STALL = 'loopsight.stall';
export const SPAN_PROMISE = 'loopsight.promise';
export const EVENT_PROMISE = 'loopsight.promise';
