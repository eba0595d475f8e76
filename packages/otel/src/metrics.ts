import type { Monitor, PromiseReport, StallReport } from '@loopsight/core';
import { reasonCounts, reportLabels, STALL_BUCKETS_SECONDS, sheds, type ThreadInfo, threadFeed } from '@loopsight/core/internal';
import { warning } from '@loopsight/options';
import type { BatchObservableCallback, Meter, Observable } from '@opentelemetry/api';
import {
  ATTR_HTTP_ROUTE,
  ATTR_PROMISE_KIND,
  ATTR_REASON,
  ATTR_STALL_EXPECTED,
  ATTR_STALL_PHASE,
  ATTR_THREAD_ID,
  ATTR_THREAD_NAME,
  EVENTLOOP_DELAY,
  EVENTLOOP_UTILIZATION,
  METRIC_INFLIGHT,
  METRIC_PROMISES,
  METRIC_REJECTED,
  METRIC_SHED,
  METRIC_STALL_DURATION,
  METRIC_STALLS,
} from './names.js';

export interface LoopsightMetrics {
  stall(report: StallReport): void;
  promise(report: PromiseReport): void;
  stop(): void;
}

/**
 * The monitor's figures as OTel instruments. Loop delay and utilization are observed when the
 * reader collects (from the last complete window, so any number of readers agree); stalls and
 * promises are recorded when they are reported. Nothing runs on the request path.
 */
export function createMetrics(meter: Meter, monitor: Monitor, options: { eventLoopMetrics: boolean; maxRoutes: number }): LoopsightMetrics {
  const labels = reportLabels(options.maxRoutes);
  const stalls = meter.createCounter(METRIC_STALLS, {
    description: 'Event loop stalls, by the route template of the request that was blocking the loop.',
    unit: '{stall}',
  });
  const stallDuration = meter.createHistogram(METRIC_STALL_DURATION, {
    description: 'Duration of event loop stalls, by the route template of the request that was blocking the loop.',
    unit: 's',
    advice: { explicitBucketBoundaries: [...STALL_BUCKETS_SECONDS] },
  });
  const promises = meter.createCounter(METRIC_PROMISES, {
    description: 'Floating, leaked and unhandled promises, by kind and the route template of the request that created them.',
    unit: '{promise}',
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
      description: 'Event loop utilization (0..1) over loopsight’s last complete window.',
      unit: '1',
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
    description: 'Requests and monitor.run() jobs in flight.',
    unit: '{request}',
  });
  const rejected = meter.createObservableCounter(METRIC_REJECTED, {
    description: 'Incoming correlation ids refused and replaced, by reason.',
    unit: '{id}',
  });
  const counted = [inflight, rejected];
  const shed = sheds(monitor)
    ? meter.createObservableCounter(METRIC_SHED, {
        description: 'Requests refused with 503 by the overload guard, by reason.',
        unit: '{request}',
      })
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
  callbacks.push({ callback: counters, observables: counted });

  const unsubscribe = feed.subscribe((event) => {
    if (event.type !== 'stall') return;
    try {
      const { route, seconds, expected } = labels.stall(event.report);
      const attributes = { [ATTR_HTTP_ROUTE]: route, ...threadAttributes(event.thread) };
      stalls.add(1, { ...attributes, [ATTR_STALL_EXPECTED]: expected === 'true' });
      stallDuration.record(seconds, attributes);
    } catch (error) {
      monitor.reportError(
        'the OTel exporter could not record a worker thread stall',
        warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: 'otel:thread-stall' }),
      );
    }
  });

  return {
    stall(report) {
      const { route, seconds, expected } = labels.stall(report);
      const counted = { [ATTR_HTTP_ROUTE]: route, [ATTR_STALL_EXPECTED]: expected === 'true' };
      stalls.add(1, report.phase === undefined ? counted : { ...counted, [ATTR_STALL_PHASE]: report.phase });
      stallDuration.record(seconds, { [ATTR_HTTP_ROUTE]: route });
    },
    promise(report) {
      const { kind, route, count } = labels.promise(report);
      promises.add(count, { [ATTR_PROMISE_KIND]: kind, [ATTR_HTTP_ROUTE]: route });
    },
    stop() {
      unsubscribe();
      for (const { callback, observables } of callbacks) meter.removeBatchObservableCallback(callback, observables);
    },
  };
}
