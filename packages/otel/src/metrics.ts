import { type MonitorLike, type PromiseReport, routeLabeler, type StallReport } from '@loopsight/core';
import type { BatchObservableCallback, Meter, Observable, ObservableResult } from '@opentelemetry/api';
import {
  ATTR_HTTP_ROUTE,
  ATTR_PROMISE_KIND,
  ATTR_REASON,
  EVENTLOOP_DELAY,
  EVENTLOOP_UTILIZATION,
  METRIC_INFLIGHT,
  METRIC_PROMISES,
  METRIC_REJECTED,
  METRIC_SHED,
  METRIC_STALL_DURATION,
  METRIC_STALLS,
} from './names.js';

const STALL_BOUNDARIES_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface LoopsightMetrics {
  stall(report: StallReport): void;
  promise(report: PromiseReport): void;
  stop(): void;
}

/** `{ reason: n }` entries of a counter map; `shed` exists once the overload guard does. */
function observeReasons(result: ObservableResult, counts: unknown): void {
  if (typeof counts !== 'object' || counts === null) return;
  for (const [reason, value] of Object.entries(counts)) {
    if (typeof value === 'number') result.observe(value, { [ATTR_REASON]: reason });
  }
}

/**
 * The monitor's figures as OTel instruments. Loop delay and utilization are observed when the
 * reader collects (from the last complete window, so any number of readers agree); stalls and
 * promises are recorded when they are reported. Nothing runs on the request path.
 */
export function createMetrics(
  meter: Meter,
  monitor: MonitorLike,
  options: { eventLoopMetrics: boolean; maxRoutes: number },
): LoopsightMetrics {
  const label = routeLabeler(options.maxRoutes);
  const stalls = meter.createCounter(METRIC_STALLS, {
    description: 'Event loop stalls, by the route template of the request that was blocking the loop.',
    unit: '{stall}',
  });
  const stallDuration = meter.createHistogram(METRIC_STALL_DURATION, {
    description: 'Duration of event loop stalls, by the route template of the request that was blocking the loop.',
    unit: 's',
    advice: { explicitBucketBoundaries: STALL_BOUNDARIES_S },
  });
  const promises = meter.createCounter(METRIC_PROMISES, {
    description: 'Floating, leaked and unhandled promises, by kind and the route template of the request that created them.',
    unit: '{promise}',
  });

  const callbacks: { callback: BatchObservableCallback; observables: Observable[] }[] = [];
  const fail = (what: string) => (error: unknown) => monitor.reportError(`the OTel exporter could not read ${what}`, error);

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
  const hasShed = 'shed' in monitor.counters();
  const shed = hasShed
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
      const c = monitor.counters();
      const rejects = c.correlationIdsRejected;
      for (const [reason, value] of Object.entries(rejects)) result.observe(rejected, value, { [ATTR_REASON]: reason });
      if (shed) observeReasons({ observe: (value, attributes) => result.observe(shed, value, attributes) }, (c as { shed?: unknown }).shed);
    } catch (error) {
      failCounters(error);
    }
  };
  meter.addBatchObservableCallback(counters, counted);
  callbacks.push({ callback: counters, observables: counted });

  return {
    stall(report) {
      const attributes = { [ATTR_HTTP_ROUTE]: label(report.request, report.inflight) };
      stalls.add(1, attributes);
      stallDuration.record(report.durationMs / 1000, attributes);
    },
    promise(report) {
      // Reports left out by the tracker's once-a-minute rule arrive as `suppressed` on the next one.
      promises.add(1 + (report.suppressed ?? 0), { [ATTR_PROMISE_KIND]: report.kind, [ATTR_HTTP_ROUTE]: label(report.request) });
    },
    stop() {
      for (const { callback, observables } of callbacks) meter.removeBatchObservableCallback(callback, observables);
    },
  };
}
