/**
 * @packageDocumentation
 * What loopsight's exporters build on, so every backend counts alike: the metric catalog (names,
 * units, help), one stall subscription covering the main thread and every worker thread, bounded
 * route labels, the stall histogram buckets, per-reason counts and the worker-thread feed. Not public
 * API: no stability promise, any release may change it. docs/architecture.md, "Adding an exporter".
 */
export {
  type BackpressureCounter,
  type CountedJob,
  type CountedStall,
  DEFAULT_MAX_ROUTES,
  DRAIN_BUCKETS_SECONDS,
  JOB_BUCKETS_SECONDS,
  METRICS,
  type MetricSpec,
  OUTBOUND_BUCKETS_SECONDS,
  type ReportLabels,
  reasonCounts,
  reportLabels,
  STALL_BUCKETS_SECONDS,
  type StallCounter,
  sheds,
  subscribeBackpressure,
  subscribeJobs,
  subscribeOutbound,
  subscribeStalls,
  whenConnectionsCounted,
} from './exporting.js';
export { threadFeed } from './hub.js';
export type { OutboundWait } from './outbound.js';
export type { ThreadEvent, ThreadFeed, ThreadInfo, ThreadSnapshot } from './thread-feed.js';
