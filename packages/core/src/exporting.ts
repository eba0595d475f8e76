import { ROUTE_STARTUP, routeLabeler } from './routes.js';
import type { Monitor, PromiseReport, StallReport } from './types.js';

/** Upper bounds of the stall duration histograms, seconds: the same in Prometheus and OTel. */
export const STALL_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);

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
