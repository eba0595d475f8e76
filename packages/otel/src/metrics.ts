import type { Monitor, PromiseReport } from '@loopsight/core';
import {
  type CountedJob,
  type CountedStall,
  DRAIN_BUCKETS_SECONDS,
  JOB_BUCKETS_SECONDS,
  METRICS,
  OUTBOUND_BUCKETS_SECONDS,
  type OutboundWait,
  type ReportLabels,
  reasonCounts,
  STALL_BUCKETS_SECONDS,
  sheds,
  type ThreadInfo,
  threadFeed,
  whenConnectionsCounted,
} from '@loopsight/core/exporter';
import { warning } from '@loopsight/options';
import type { BatchObservableCallback, Meter, Observable } from '@opentelemetry/api';
import {
  ATTR_BACKPRESSURE_KIND,
  ATTR_HTTP_ROUTE,
  ATTR_JOB_NAME,
  ATTR_JOB_OUTCOME,
  ATTR_OUTBOUND_ORIGIN,
  ATTR_PROMISE_KIND,
  ATTR_REASON,
  ATTR_STALL_EXPECTED,
  ATTR_STALL_PHASE,
  ATTR_THREAD_ID,
  ATTR_THREAD_NAME,
  EVENTLOOP_DELAY,
  EVENTLOOP_UTILIZATION,
  METRIC_BACKPRESSURE,
  METRIC_BACKPRESSURE_BUFFERED,
  METRIC_CONNECTIONS_CLOSED,
  METRIC_CONNECTIONS_OPEN,
  METRIC_CONNECTIONS_OPENED,
  METRIC_DRAIN_WAIT,
  METRIC_INFLIGHT,
  METRIC_JOB_DURATION,
  METRIC_JOBS,
  METRIC_OUTBOUND_QUEUE_WAIT,
  METRIC_PROMISES,
  METRIC_REJECTED,
  METRIC_SHED,
  METRIC_STALL_DURATION,
  METRIC_STALLS,
} from './names.js';

export interface LoopsightMetrics {
  /** A stall of the main thread or, with `thread`, of a worker thread (core's subscribeStalls). */
  stall(stall: CountedStall): void;
  promise(report: PromiseReport): void;
  /** A queue job ended (core's subscribeJobs). */
  job(job: CountedJob): void;
  /** A backpressure report (core's subscribeBackpressure). */
  backpressure(counted: { kind: string; route: string; count: number }): void;
  /** A timed wait for 'drain' (core's subscribeBackpressure). */
  drain(counted: { route: string; seconds: number }): void;
  /** A fetch() waited for a connection (core's subscribeOutbound; docs/outbound.md). */
  outboundWait(wait: OutboundWait): void;
  stop(): void;
}

/**
 * The monitor's figures as OTel instruments. Loop delay and utilization are observed when the
 * reader collects (from the last complete window, so any number of readers agree); stalls and
 * promises are recorded when they are reported. Nothing runs on the request path.
 */
export function createMetrics(
  meter: Meter,
  monitor: Monitor,
  labels: ReportLabels,
  options: { eventLoopMetrics: boolean },
): LoopsightMetrics {
  const stalls = meter.createCounter(METRIC_STALLS, { description: METRICS.stalls.help, unit: METRICS.stalls.unit });
  const stallDuration = meter.createHistogram(METRIC_STALL_DURATION, {
    description: METRICS.stallDuration.help,
    unit: METRICS.stallDuration.unit,
    advice: { explicitBucketBoundaries: [...STALL_BUCKETS_SECONDS] },
  });
  const promises = meter.createCounter(METRIC_PROMISES, { description: METRICS.promises.help, unit: METRICS.promises.unit });

  const jobs = meter.createCounter(METRIC_JOBS, { description: METRICS.jobs.help, unit: METRICS.jobs.unit });
  const jobDuration = meter.createHistogram(METRIC_JOB_DURATION, {
    description: METRICS.jobDuration.help,
    unit: METRICS.jobDuration.unit,
    advice: { explicitBucketBoundaries: [...JOB_BUCKETS_SECONDS] },
  });

  // --- backpressure ---
  const backpressure = meter.createCounter(METRIC_BACKPRESSURE, {
    description: METRICS.backpressure.help,
    unit: METRICS.backpressure.unit,
  });
  const drainWait = meter.createHistogram(METRIC_DRAIN_WAIT, {
    description: METRICS.drainWait.help,
    unit: METRICS.drainWait.unit,
    advice: { explicitBucketBoundaries: [...DRAIN_BUCKETS_SECONDS] },
  });
  const buffered = meter.createObservableGauge(METRIC_BACKPRESSURE_BUFFERED, {
    description: METRICS.backpressureBuffered.help,
    unit: METRICS.backpressureBuffered.unit,
  });
  // Observed from the first writer told to wait on, so a service whose writers never wait shows no series.
  let bufferedSeen = false;
  const observeBuffered: BatchObservableCallback = (result) => {
    try {
      const counts = monitor.counters().backpressure;
      if (counts === undefined) return;
      bufferedSeen ||= counts.waiting > 0 || counts.reported.ignored + counts.reported.slowConsumer > 0;
      if (bufferedSeen) result.observe(buffered, counts.bufferedBytes);
    } catch (error) {
      fail('the buffered bytes')(error);
    }
  };
  // --- end backpressure ---
  // Outbound queueing (docs/outbound.md).
  const outboundQueueWait = meter.createHistogram(METRIC_OUTBOUND_QUEUE_WAIT, {
    description: METRICS.outboundQueueWait.help,
    unit: METRICS.outboundQueueWait.unit,
    advice: { explicitBucketBoundaries: [...OUTBOUND_BUCKETS_SECONDS] },
  });

  const callbacks: { callback: BatchObservableCallback; observables: Observable[] }[] = [];
  // Worker threads whose own monitors report: their points carry thread.id and thread.name
  // (semantic conventions); the main thread's carry neither, as before.
  const feed = threadFeed();
  const threadAttributes = (t: ThreadInfo) => ({ [ATTR_THREAD_ID]: t.threadId, [ATTR_THREAD_NAME]: t.name });
  const fail = (what: string) => (error: unknown) =>
    monitor.reportError(
      `the OTel exporter could not read ${what}`,
      warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `otel:read ${what}` }),
    );

  if (options.eventLoopMetrics) {
    const gauges = Object.entries(EVENTLOOP_DELAY).map(
      ([stat, name]) =>
        [
          stat as keyof typeof EVENTLOOP_DELAY,
          meter.createObservableGauge(name, {
            description: `Event loop delay beyond the sampling resolution, ${stat}, over loopsight's last complete window.`,
            unit: 's',
          }),
        ] as const,
    );
    const utilization = meter.createObservableGauge(EVENTLOOP_UTILIZATION, {
      description: METRICS.utilization.help,
      unit: METRICS.utilization.unit,
    });
    const failLoop = fail('the loop stats');
    const loop: BatchObservableCallback = (result) => {
      try {
        const stats = monitor.loopStats();
        for (const [stat, gauge] of gauges) result.observe(gauge, stats[stat] / 1000);
        result.observe(utilization, stats.utilization);
        for (const t of feed.threads()) {
          const attributes = threadAttributes(t);
          for (const [stat, gauge] of gauges) result.observe(gauge, t.stats[stat] / 1000, attributes);
          result.observe(utilization, t.stats.utilization, attributes);
        }
      } catch (error) {
        failLoop(error);
      }
    };
    const observed = [...gauges.map(([, g]) => g), utilization];
    meter.addBatchObservableCallback(loop, observed);
    callbacks.push({ callback: loop, observables: observed });
  }

  const inflight = meter.createObservableUpDownCounter(METRIC_INFLIGHT, {
    description: METRICS.inflight.help,
    unit: METRICS.inflight.unit,
  });
  const rejected = meter.createObservableCounter(METRIC_REJECTED, { description: METRICS.rejected.help, unit: METRICS.rejected.unit });
  const counted = [inflight, rejected];
  const shed = sheds(monitor)
    ? meter.createObservableCounter(METRIC_SHED, { description: METRICS.shed.help, unit: METRICS.shed.unit })
    : undefined;
  if (shed) counted.push(shed);
  const failCounters = fail('the monitor counters');
  const counters: BatchObservableCallback = (result) => {
    try {
      result.observe(inflight, monitor.inflight().length);
      const counts = reasonCounts(monitor);
      for (const [reason, value] of counts.rejected) result.observe(rejected, value, { [ATTR_REASON]: reason });
      if (shed) for (const [reason, value] of counts.shed) result.observe(shed, value, { [ATTR_REASON]: reason });
    } catch (error) {
      failCounters(error);
    }
  };
  meter.addBatchObservableCallback(counters, counted);
  meter.addBatchObservableCallback(observeBuffered, [buffered]);
  callbacks.push({ callback: observeBuffered, observables: [buffered] });
  callbacks.push({ callback: counters, observables: counted });

  // WebSocket connections, once an adapter counts them (it may be mounted after this started).
  const stopConnections = whenConnectionsCounted(monitor, () => {
    const open = meter.createObservableUpDownCounter(METRIC_CONNECTIONS_OPEN, {
      description: METRICS.connectionsOpen.help,
      unit: METRICS.connectionsOpen.unit,
    });
    const opened = meter.createObservableCounter(METRIC_CONNECTIONS_OPENED, {
      description: METRICS.connectionsOpened.help,
      unit: METRICS.connectionsOpened.unit,
    });
    const closed = meter.createObservableCounter(METRIC_CONNECTIONS_CLOSED, {
      description: METRICS.connectionsClosed.help,
      unit: METRICS.connectionsClosed.unit,
    });
    const failConnections = fail('the connection counts');
    const connections: BatchObservableCallback = (result) => {
      try {
        const counts = monitor.counters().connections;
        if (counts === undefined) return;
        result.observe(open, counts.open);
        result.observe(opened, counts.opened);
        result.observe(closed, counts.closed);
      } catch (error) {
        failConnections(error);
      }
    };
    meter.addBatchObservableCallback(connections, [open, opened, closed]);
    callbacks.push({ callback: connections, observables: [open, opened, closed] });
  });

  return {
    stall({ report, route, seconds, expected, thread }) {
      const attributes = thread ? { [ATTR_HTTP_ROUTE]: route, ...threadAttributes(thread) } : { [ATTR_HTTP_ROUTE]: route };
      const counted = { ...attributes, [ATTR_STALL_EXPECTED]: expected === 'true' };
      stalls.add(1, report.phase === undefined ? counted : { ...counted, [ATTR_STALL_PHASE]: report.phase });
      stallDuration.record(seconds, attributes);
    },
    promise(report) {
      const { kind, route, count } = labels.promise(report);
      promises.add(count, { [ATTR_PROMISE_KIND]: kind, [ATTR_HTTP_ROUTE]: route });
    },
    job({ job, outcome, seconds }) {
      jobs.add(1, { [ATTR_JOB_NAME]: job, [ATTR_JOB_OUTCOME]: outcome });
      jobDuration.record(seconds, { [ATTR_JOB_NAME]: job });
    },
    backpressure({ kind, route, count }) {
      bufferedSeen = true;
      backpressure.add(count, { [ATTR_BACKPRESSURE_KIND]: kind, [ATTR_HTTP_ROUTE]: route });
    },
    drain({ route, seconds }) {
      bufferedSeen = true;
      drainWait.record(seconds, { [ATTR_HTTP_ROUTE]: route });
    },
    outboundWait({ origin, seconds }) {
      outboundQueueWait.record(seconds, { [ATTR_OUTBOUND_ORIGIN]: origin });
    },
    stop() {
      stopConnections();
      for (const { callback, observables } of callbacks) meter.removeBatchObservableCallback(callback, observables);
    },
  };
}
