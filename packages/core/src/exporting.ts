import { warning } from '@loopsight/options';
import { threadFeed } from './hub.js';
import { internals } from './monitor.js';
import type { OutboundWait } from './outbound.js';
import { ROUTE_STARTUP, routeLabeler } from './routes.js';
import type { ThreadInfo } from './thread-feed.js';
import type { BackpressureReport, Monitor, PromiseReport, RequestRecord, StallReport } from './types.js';

/** Upper bounds of the stall duration histograms, seconds: the same in Prometheus and OTel. */
export const STALL_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);

/**
 * Upper bounds of the job duration histograms, seconds (jobs run longer than requests): the same in
 * Prometheus and OTel.
 */
export const JOB_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]);

/** Upper bounds of the drain-wait histograms, seconds: the same in Prometheus and OTel. */
export const DRAIN_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
/**
 * Upper bounds of the outbound queue-wait histograms, seconds (docs/outbound.md): from a warm pool's
 * sub-millisecond hand-over to requests queued for tens of seconds. The same in Prometheus and OTel.
 */
export const OUTBOUND_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

/** The `method` of a queue job's scope and 'request' record (@loopsight/bullmq). */
export const JOB_METHOD = 'JOB';

/** Distinct route labels an exporter keeps by default before counting the rest as `__other__`. */
export const DEFAULT_MAX_ROUTES = 100;

/** What an exporter records for a report: the same labels and counts whatever the backend. */
export interface ReportLabels {
  /**
   * `expected`: 'true' for a stall declared with expectBlocking() or loopLag.expected, else 'false'.
   * `route`: `__startup__` for a stall of the startup phase (`phase: 'startup'`), whatever ran.
   */
  stall(report: StallReport): { route: string; seconds: number; expected: 'true' | 'false' };
  /** `count` includes the reports of the same site left out by the once-a-minute rule (`suppressed`). */
  promise(report: PromiseReport): { kind: PromiseReport['kind']; route: string; count: number };
}

/** Route labels bounded by `maxRoutes` (see routeLabeler), one set per exporter. */
export function reportLabels(maxRoutes: number): ReportLabels {
  const label = routeLabeler(maxRoutes);
  return {
    stall: (report) => ({
      route: report.phase === 'startup' ? ROUTE_STARTUP : label(report.request, report.inflight),
      seconds: report.durationMs / 1000,
      expected: report.expected ? 'true' : 'false',
    }),
    promise: (report) => ({ kind: report.kind, route: label(report.request), count: 1 + (report.suppressed ?? 0) }),
  };
}

/** Whether the monitor sheds load (the `shed` option): only then do exporters publish shed counts. */
export function sheds(monitor: Monitor): boolean {
  return monitor.counters().shed !== undefined;
}

/** The monitor's per-reason counts, read once: refused correlation ids, and shed requests when it sheds. */
export function reasonCounts(monitor: Monitor): { rejected: [reason: string, count: number][]; shed: [reason: string, count: number][] } {
  const counters = monitor.counters();
  return {
    rejected: Object.entries(counters.correlationIdsRejected),
    shed: counters.shed === undefined ? [] : Object.entries(counters.shed),
  };
}

/**
 * One metric as every exporter names and describes it: the Prometheus name (after the exporter's
 * prefix), the OpenTelemetry name (semantic conventions where they exist), the unit and the help.
 */
export interface MetricSpec {
  readonly prometheus: string;
  readonly otel: string;
  readonly unit: string;
  readonly help: string;
}

/** The metrics loopsight exports, the same in every backend (docs/metrics.md). */
export const METRICS = Object.freeze({
  delay: {
    prometheus: 'event_loop_delay_seconds',
    otel: 'nodejs.eventloop.delay',
    unit: 's',
    help: 'Event loop delay beyond the sampling resolution, in seconds: every sample since start, up to the last complete window.',
  },
  utilization: {
    prometheus: 'event_loop_utilization',
    otel: 'nodejs.eventloop.utilization',
    unit: '1',
    help: 'Share of time the event loop was busy (0..1), over the last complete window.',
  },
  stalls: {
    prometheus: 'event_loop_stalls_total',
    otel: 'loopsight.eventloop.stalls',
    unit: '{stall}',
    help: 'Event loop stalls, by the route template of the request that was blocking the loop, and whether the blocking was declared expected.',
  },
  stallDuration: {
    prometheus: 'event_loop_stall_seconds',
    otel: 'loopsight.eventloop.stall.duration',
    unit: 's',
    help: 'Duration of event loop stalls in seconds, by the route template of the request that was blocking the loop.',
  },
  promises: {
    prometheus: 'promises_total',
    otel: 'loopsight.promises',
    unit: '{promise}',
    help: 'Floating, leaked and unhandled promises, by kind and the route template of the request that created them.',
  },
  inflight: {
    prometheus: 'requests_inflight',
    otel: 'loopsight.requests.inflight',
    unit: '{request}',
    help: 'Requests and monitor.run() jobs in flight.',
  },
  rejected: {
    prometheus: 'correlation_ids_rejected_total',
    otel: 'loopsight.correlation_ids.rejected',
    unit: '{id}',
    help: 'Incoming correlation ids refused and replaced, by reason.',
  },
  shed: {
    prometheus: 'requests_shed_total',
    otel: 'loopsight.requests.shed',
    unit: '{request}',
    help: 'Requests refused with 503 by the overload guard, by reason.',
  },
  connectionsOpen: {
    prometheus: 'connections_open',
    otel: 'loopsight.connections.open',
    unit: '{connection}',
    help: 'Long-lived connections (WebSocket) open now.',
  },
  connectionsOpened: {
    prometheus: 'connections_opened_total',
    otel: 'loopsight.connections.opened',
    unit: '{connection}',
    help: 'Long-lived connections (WebSocket) opened since start.',
  },
  connectionsClosed: {
    prometheus: 'connections_closed_total',
    otel: 'loopsight.connections.closed',
    unit: '{connection}',
    help: 'Long-lived connections (WebSocket) closed since start.',
  },
  jobs: {
    prometheus: 'jobs_total',
    otel: 'loopsight.jobs',
    unit: '{job}',
    help: 'Queue jobs processed, by job name and outcome (completed or failed).',
  },
  jobDuration: {
    prometheus: 'job_duration_seconds',
    otel: 'loopsight.job.duration',
    unit: 's',
    help: 'Time a queue job spent in its processor, in seconds, by job name.',
  },
  // --- backpressure (docs/backpressure.md) ---
  drainWait: {
    prometheus: 'drain_wait_seconds',
    otel: 'loopsight.drain.wait',
    unit: 's',
    help: "Time writers waited for 'drain' after a write was told to wait, in seconds, by the route template or WebSocket message kind.",
  },
  backpressure: {
    prometheus: 'backpressure_total',
    otel: 'loopsight.backpressure',
    unit: '{report}',
    help: 'Writers that ignored backpressure or whose reader could not keep up, by kind (ignored, slow-consumer) and route template.',
  },
  backpressureBuffered: {
    prometheus: 'backpressure_buffered_bytes',
    otel: 'loopsight.backpressure.buffered',
    unit: 'By',
    help: "Bytes buffered in memory now by the writers waiting for 'drain'.",
  },
  // --- end backpressure ---
  // Outbound queueing (docs/outbound.md).
  outboundQueueWait: {
    prometheus: 'outbound_queue_wait_seconds',
    otel: 'loopsight.outbound.queue.wait_time',
    unit: 's',
    help: "Time fetch() calls waited for a connection of their dispatcher's pool (queued behind its connection limit, or opening a new connection), in seconds, by origin.",
  },
} satisfies Record<string, MetricSpec>);

/**
 * Calls `fn` once the monitor counts connections (an adapter such as @loopsight/ws turned counting
 * on): at once if it does, else when it starts to. Exporters register their connection metrics
 * there, so an HTTP-only service shows none. Returns the unsubscribe function.
 */
export function whenConnectionsCounted(monitor: Monitor, fn: () => void): () => void {
  return internals(monitor).whenConnectionsCounted(fn);
}

/** A finished queue job as an exporter counts it: its name (bounded), outcome and duration. */
export interface CountedJob {
  readonly job: string;
  readonly outcome: 'completed' | 'failed';
  readonly seconds: number;
}

/**
 * Every queue job the monitor ends (its 'request' records with `method: 'JOB'`), named through a
 * route labeler of `maxJobs` names (past it, `__other__`). The first job calls `counter` only after
 * `first()`, so that an exporter registers job metrics only in a process that runs jobs. A throwing
 * counter is contained and warned once. Returns the unsubscribe function.
 */
export function subscribeJobs(
  monitor: Monitor,
  maxJobs: number,
  exporter: { name: string; site: string },
  counter: { first?(): void; job(job: CountedJob): void },
): () => void {
  const label = routeLabeler(maxJobs);
  let seen = false;
  const onRecord = (record: RequestRecord) => {
    if (record.method !== JOB_METHOD) return;
    try {
      if (!seen) {
        seen = true;
        counter.first?.();
      }
      counter.job({ job: label(record), outcome: record.aborted ? 'failed' : 'completed', seconds: record.durationMs / 1000 });
    } catch (error) {
      monitor.reportError(
        `the ${exporter.name} exporter could not count a job`,
        warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `${exporter.site}:job` }),
      );
    }
  };
  monitor.on('request', onRecord);
  return () => monitor.off('request', onRecord);
}

/**
 * Every fetch() wait for a connection the monitor hears of (docs/outbound.md), its origin bounded
 * by the monitor's `outbound.maxOrigins`. The first wait calls `counter` only after `first()`, so
 * that an exporter registers the metric only in a process that makes fetch calls. A throwing
 * counter is contained and warned once. Returns the unsubscribe function.
 */
export function subscribeOutbound(
  monitor: Monitor,
  exporter: { name: string; site: string },
  counter: { first?(): void; wait(wait: OutboundWait): void },
): () => void {
  let seen = false;
  return internals(monitor).onOutbound((wait) => {
    try {
      if (!seen) {
        seen = true;
        counter.first?.();
      }
      counter.wait(wait);
    } catch (error) {
      monitor.reportError(
        `the ${exporter.name} exporter could not record an outbound wait`,
        warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `${exporter.site}:outbound` }),
      );
    }
  });
}

/** A stall as an exporter counts it: its labels, and the worker thread it was of (none: the main thread). */
export interface CountedStall {
  readonly report: StallReport;
  readonly route: string;
  readonly seconds: number;
  readonly expected: 'true' | 'false';
  readonly thread: ThreadInfo | undefined;
}

/** What an exporter does with the stalls it counts. */
export interface StallCounter {
  stall(stall: CountedStall): void;
  /** A worker thread is gone: its series may go with it. */
  threadExit?(thread: ThreadInfo): void;
}

/**
 * Every stall an exporter counts, through one subscription: the monitor's own and, on the main
 * thread, those of the worker threads whose monitors report there. A throwing counter is
 * contained and warned once, in the exporter's `name` (`site` tells two exporters apart). Returns the unsubscribe function.
 */
export function subscribeStalls(
  monitor: Monitor,
  labels: ReportLabels,
  exporter: { name: string; site: string },
  counter: StallCounter,
): () => void {
  const contain = (what: string, site: string, fn: () => void) => {
    try {
      fn();
    } catch (error) {
      monitor.reportError(
        `the ${exporter.name} exporter could not ${what}`,
        warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `${exporter.site}:${site}` }),
      );
    }
  };
  const count = (report: StallReport, thread: ThreadInfo | undefined) =>
    contain('record a stall', 'stall', () => counter.stall({ report, ...labels.stall(report), thread }));
  const onStall = (report: StallReport) => count(report, undefined);
  monitor.on('stall', onStall);
  const unsubscribe = threadFeed().subscribe((event) => {
    if (event.type === 'stall') count(event.report, event.thread);
    else contain('forget a worker thread', 'thread-exit', () => counter.threadExit?.(event.thread));
  });
  return () => {
    monitor.off('stall', onStall);
    unsubscribe();
  };
}

/** What an exporter does with backpressure: reports counted by kind and route, drain waits timed by route. */
export interface BackpressureCounter {
  /** Called before the first of either, so that an exporter registers these metrics only in a process that sees backpressure. */
  first?(): void;
  report(counted: { kind: BackpressureReport['kind']; route: string; count: number }): void;
  drain(counted: { route: string; seconds: number }): void;
}

/**
 * Every backpressure report and timed drain of the monitor, routes bounded by a labeler of
 * `maxRoutes` (past it, `__other__`). A throwing counter is contained and warned once. Returns the
 * unsubscribe function. The bytes buffered now are read from `monitor.counters().backpressure`.
 */
export function subscribeBackpressure(
  monitor: Monitor,
  maxRoutes: number,
  exporter: { name: string; site: string },
  counter: BackpressureCounter,
): () => void {
  const label = routeLabeler(maxRoutes);
  let seen = false;
  const contain = (what: string, fn: () => void) => {
    try {
      if (!seen) {
        seen = true;
        counter.first?.();
      }
      fn();
    } catch (error) {
      monitor.reportError(
        `the ${exporter.name} exporter could not count ${what}`,
        warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `${exporter.site}:${what}` }),
      );
    }
  };
  const onReport = (report: BackpressureReport) =>
    contain('backpressure', () => counter.report({ kind: report.kind, route: label(report.request), count: 1 + report.suppressed }));
  monitor.on('backpressure', onReport);
  const unsubscribe = internals(monitor).onDrain((wait) =>
    contain('drain', () => counter.drain({ route: label(wait.scope), seconds: wait.seconds })),
  );
  return () => {
    monitor.off('backpressure', onReport);
    unsubscribe();
  };
}
