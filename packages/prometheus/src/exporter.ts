import type { LoopDelayHistogram, Monitor, PromiseReport } from '@loopsight/core';
import {
  DEFAULT_MAX_ROUTES,
  DRAIN_BUCKETS_SECONDS,
  JOB_BUCKETS_SECONDS,
  METRICS,
  OUTBOUND_BUCKETS_SECONDS,
  reasonCounts,
  reportLabels,
  STALL_BUCKETS_SECONDS,
  sheds,
  subscribeBackpressure,
  subscribeJobs,
  subscribeOutbound,
  subscribeStalls,
  threadFeed,
  whenConnectionsCounted,
} from '@loopsight/core/exporter';
import { custom, invalidOption, isPlainObject, positive, resolveShape, type Shape, string, warning } from '@loopsight/options';
import { Counter, Histogram, register } from 'prom-client';
import { PullMetric, type Sample } from './collector.js';
import type { AnyRegistry, PrometheusExporter, PrometheusExporterOptions } from './types.js';

interface Config {
  readonly registry: AnyRegistry;
  readonly prefix: string;
  readonly maxRoutes: number;
  readonly stallBuckets: readonly number[];
}

const BUCKETS_ACCEPTED = 'ascending positive numbers of seconds';

const SHAPE = {
  registry: custom<AnyRegistry>('a prom-client Registry', (value, path) => {
    if (value === undefined) return register;
    if (isPlainObject(value) && typeof value.registerMetric === 'function') return value as unknown as AnyRegistry;
    return invalidOption(path, 'a prom-client Registry', value);
  }),
  prefix: string({
    pattern: /^(|[a-zA-Z_:][a-zA-Z0-9_:]*)$/,
    default: 'loopsight_',
    accepted: 'a valid Prometheus metric name prefix',
  }),
  maxRoutes: positive({ integer: true, default: DEFAULT_MAX_ROUTES }),
  stallBuckets: custom<readonly number[]>(BUCKETS_ACCEPTED, (value, path) => {
    if (value === undefined) return STALL_BUCKETS_SECONDS;
    const ok =
      Array.isArray(value) &&
      value.length > 0 &&
      value.length <= 100 &&
      value.every((b, i) => typeof b === 'number' && Number.isFinite(b) && b > 0 && (i === 0 || b > (value[i - 1] as number)));
    if (!ok) invalidOption(path, BUCKETS_ACCEPTED, value);
    return Object.freeze([...(value as number[])]);
  }),
} satisfies Shape;

function resolveOptions(options: PrometheusExporterOptions | undefined): Config {
  return resolveShape(SHAPE, options);
}

// One exporter per (registry, prefix): a second one would clash on every name, so it gets the same
// component name and Monitor#attach ignores it.
const registryIds = new WeakMap<object, number>();
let nextRegistryId = 0;
function componentName(config: Config): string {
  let id = registryIds.get(config.registry);
  if (id === undefined) {
    id = nextRegistryId++;
    registryIds.set(config.registry, id);
  }
  return `@loopsight/prometheus(${config.prefix}, registry ${id})`;
}

/** A delay histogram as Prometheus buckets, `_sum` and `_count`, with `extra` labels on each. */
function delaySamples(name: string, h: LoopDelayHistogram, extra: Record<string, string>): Sample[] {
  const samples: Sample[] = h.boundsMs.map((ms, i) => ({
    metricName: `${name}_bucket`,
    labels: { ...extra, le: ms / 1000 },
    value: h.counts[i] ?? 0,
  }));
  samples.push({ metricName: `${name}_bucket`, labels: { ...extra, le: '+Inf' }, value: h.count });
  samples.push({ metricName: `${name}_sum`, labels: extra, value: h.sumMs / 1000 });
  samples.push({ metricName: `${name}_count`, labels: extra, value: h.count });
  return samples;
}

const reasonSamples = (counts: [reason: string, count: number][]): Sample[] =>
  counts.map(([reason, value]) => ({ labels: { reason }, value }));

/**
 * Prometheus metrics for a loopsight Monitor, registered in a prom-client registry: the loop delay
 * as a real histogram (aggregatable across instances with `histogram_quantile`), utilization,
 * stalls and promises by route template, requests in flight, refused correlation ids.
 *
 * The loop figures are read at scrape time from the monitor's last complete window, so any number
 * of scrapers and registries read the same, consistent counts; stalls and promises are counted
 * when they are reported. Nothing runs on the request path.
 *
 * @example
 * import { register } from 'prom-client';
 * app.use(loopsight({ exporters: [prometheusExporter()] }));
 * app.get('/metrics', metricsHandler(register));
 */
export function prometheusExporter(options?: PrometheusExporterOptions): PrometheusExporter {
  const config = resolveOptions(options);
  const { registry, prefix } = config;
  // Where this exporter's problems come from: one registry and prefix (two exporters warn apart).
  const site = componentName(config);
  const names = {
    delay: `${prefix}${METRICS.delay.prometheus}`,
    utilization: `${prefix}${METRICS.utilization.prometheus}`,
    stalls: `${prefix}${METRICS.stalls.prometheus}`,
    stallSeconds: `${prefix}${METRICS.stallDuration.prometheus}`,
    promises: `${prefix}${METRICS.promises.prometheus}`,
    inflight: `${prefix}${METRICS.inflight.prometheus}`,
    rejected: `${prefix}${METRICS.rejected.prometheus}`,
    shed: `${prefix}${METRICS.shed.prometheus}`,
    connectionsOpen: `${prefix}${METRICS.connectionsOpen.prometheus}`,
    connectionsOpened: `${prefix}${METRICS.connectionsOpened.prometheus}`,
    connectionsClosed: `${prefix}${METRICS.connectionsClosed.prometheus}`,
    jobs: `${prefix}${METRICS.jobs.prometheus}`,
    jobSeconds: `${prefix}${METRICS.jobDuration.prometheus}`,
    // --- backpressure ---
    drainWait: `${prefix}${METRICS.drainWait.prometheus}`,
    backpressure: `${prefix}${METRICS.backpressure.prometheus}`,
    backpressureBuffered: `${prefix}${METRICS.backpressureBuffered.prometheus}`,
    // --- end backpressure ---
    outboundQueueWait: `${prefix}${METRICS.outboundQueueWait.prometheus}`,
  };
  let registered: { name: string; metric: unknown }[] = [];
  let detach: (() => void) | undefined;

  function unregister(): void {
    for (const { name, metric } of registered) {
      // Only ours: after a clash, the name belongs to whoever registered it first.
      if (registry.getSingleMetric(name) === metric) registry.removeSingleMetric(name);
    }
    registered = [];
  }

  function start(monitor: Monitor): void {
    if (detach) return;
    const fail = (what: string) => (error: unknown) =>
      monitor.reportError(
        `the Prometheus exporter could not read ${what}`,
        warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `${site}:read ${what}` }),
      );
    const labels = reportLabels(config.maxRoutes);
    // Worker threads whose own monitors report: their series carry a `thread` label; the main
    // thread's have none, as before.
    const feed = threadFeed();

    const delay = new PullMetric(
      {
        name: names.delay,
        help: METRICS.delay.help,
        type: 'histogram',
        aggregator: 'sum',
        labelNames: ['le', 'thread'],
      },
      () => {
        const samples = delaySamples(names.delay, monitor.loopDelayHistogram(), {});
        for (const t of feed.threads()) samples.push(...delaySamples(names.delay, t.histogram, { thread: t.label }));
        return samples;
      },
      fail('the loop delay histogram'),
    );
    const utilization = new PullMetric(
      {
        name: names.utilization,
        help: METRICS.utilization.help,
        type: 'gauge',
        aggregator: 'average',
        labelNames: ['thread'],
      },
      () => [
        { labels: {}, value: monitor.loopStats().utilization },
        ...feed.threads().map((t) => ({ labels: { thread: t.label }, value: t.stats.utilization })),
      ],
      fail('the loop utilization'),
    );
    const inflight = new PullMetric(
      { name: names.inflight, help: METRICS.inflight.help, type: 'gauge', aggregator: 'sum' },
      () => [{ labels: {}, value: monitor.inflight().length }],
      fail('the requests in flight'),
    );
    const rejected = new PullMetric(
      {
        name: names.rejected,
        help: METRICS.rejected.help,
        type: 'counter',
        aggregator: 'sum',
        labelNames: ['reason'],
      },
      () => reasonSamples(reasonCounts(monitor).rejected),
      fail('the refused correlation ids'),
    );
    const stalls = new Counter({
      name: names.stalls,
      help: METRICS.stalls.help,
      labelNames: ['route', 'expected', 'thread'],
      registers: [],
    });
    const stallSeconds = new Histogram({
      name: names.stallSeconds,
      help: METRICS.stallDuration.help,
      labelNames: ['route', 'thread'],
      buckets: [...config.stallBuckets],
      registers: [],
    });
    const promises = new Counter({
      name: names.promises,
      help: METRICS.promises.help,
      labelNames: ['kind', 'route'],
      registers: [],
    });
    const metrics: { name: string; metric: PullMetric | Counter<string> | Histogram<string> }[] = [
      { name: names.delay, metric: delay },
      { name: names.utilization, metric: utilization },
      { name: names.stalls, metric: stalls },
      { name: names.stallSeconds, metric: stallSeconds },
      { name: names.promises, metric: promises },
      { name: names.inflight, metric: inflight },
      { name: names.rejected, metric: rejected },
    ];
    // Requests shed by the overload guard, once the monitor counts them.
    if (sheds(monitor)) {
      const shed = new PullMetric(
        {
          name: names.shed,
          help: METRICS.shed.help,
          type: 'counter',
          aggregator: 'sum',
          labelNames: ['reason'],
        },
        () => reasonSamples(reasonCounts(monitor).shed),
        fail('the shed requests'),
      );
      metrics.push({ name: names.shed, metric: shed });
    }

    try {
      for (const entry of metrics) {
        if (entry.metric instanceof PullMetric) entry.metric.register(registry);
        else registry.registerMetric(entry.metric);
        registered.push(entry);
      }
    } catch (error) {
      unregister();
      monitor.reportError(
        'the Prometheus exporter could not register its metrics',
        warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `${site}:register` }),
      );
      return;
    }

    const onPromise = (report: PromiseReport) => {
      try {
        const { kind, route, count } = labels.promise(report);
        promises.inc({ kind, route }, count);
      } catch (error) {
        monitor.reportError(
          'the Prometheus exporter could not count a promise',
          warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `${site}:promise` }),
        );
      }
    };
    // A worker's stall series go with the worker: its label can then be reused, and stays bounded.
    const threadRoutes = new Map<string, Set<string>>();
    const unsubscribe = subscribeStalls(
      monitor,
      labels,
      { name: 'Prometheus', site },
      {
        stall({ route, seconds, expected, thread }) {
          if (!thread) {
            stalls.inc({ route, expected });
            stallSeconds.observe({ route }, seconds);
            return;
          }
          stalls.inc({ route, expected, thread: thread.label });
          stallSeconds.observe({ route, thread: thread.label }, seconds);
          const keys = threadRoutes.get(thread.label) ?? new Set<string>();
          threadRoutes.set(thread.label, keys.add(JSON.stringify([route, expected])));
        },
        threadExit({ label }) {
          for (const key of threadRoutes.get(label) ?? []) {
            const [route = '', expected = 'false'] = JSON.parse(key) as string[];
            stalls.remove({ route, expected, thread: label });
            stallSeconds.remove({ route, thread: label });
          }
          threadRoutes.delete(label);
        },
      },
    );
    monitor.on('promise', onPromise);
    // WebSocket connections, once an adapter counts them (it may be mounted after this started).
    const stopConnections = whenConnectionsCounted(monitor, () => {
      const read = fail('the connection counts');
      const count = (key: 'open' | 'opened' | 'closed') => () => {
        const connections = monitor.counters().connections;
        return connections === undefined ? [] : [{ labels: {}, value: connections[key] }];
      };
      const entries = [
        { name: names.connectionsOpen, spec: METRICS.connectionsOpen, type: 'gauge' as const, key: 'open' as const },
        { name: names.connectionsOpened, spec: METRICS.connectionsOpened, type: 'counter' as const, key: 'opened' as const },
        { name: names.connectionsClosed, spec: METRICS.connectionsClosed, type: 'counter' as const, key: 'closed' as const },
      ];
      for (const { name, spec, type, key } of entries) {
        const metric = new PullMetric({ name, help: spec.help, type, aggregator: 'sum' }, count(key), read);
        try {
          metric.register(registry);
          registered.push({ name, metric });
        } catch (error) {
          monitor.reportError(
            'the Prometheus exporter could not register its metrics',
            warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: `${site}:register` }),
          );
        }
      }
    });
    // Queue jobs (@loopsight/bullmq): registered with the first job, so a service without jobs
    // exposes no empty job series.
    const jobs = new Counter({ name: names.jobs, help: METRICS.jobs.help, labelNames: ['job', 'outcome'], registers: [] });
    const jobSeconds = new Histogram({
      name: names.jobSeconds,
      help: METRICS.jobDuration.help,
      labelNames: ['job'],
      buckets: [...JOB_BUCKETS_SECONDS],
      registers: [],
    });
    const unsubscribeJobs = subscribeJobs(
      monitor,
      config.maxRoutes,
      { name: 'Prometheus', site },
      {
        first() {
          for (const entry of [
            { name: names.jobs, metric: jobs },
            { name: names.jobSeconds, metric: jobSeconds },
          ]) {
            registry.registerMetric(entry.metric);
            registered.push(entry);
          }
        },
        job({ job, outcome, seconds }) {
          jobs.inc({ job, outcome });
          jobSeconds.observe({ job }, seconds);
        },
      },
    );
    // --- backpressure: registered with the first report or timed drain, so a service whose writers
    // never wait exposes no empty series.
    const backpressure = new Counter({
      name: names.backpressure,
      help: METRICS.backpressure.help,
      labelNames: ['kind', 'route'],
      registers: [],
    });
    const drainWait = new Histogram({
      name: names.drainWait,
      help: METRICS.drainWait.help,
      labelNames: ['route'],
      buckets: [...DRAIN_BUCKETS_SECONDS],
      registers: [],
    });
    const buffered = new PullMetric(
      { name: names.backpressureBuffered, help: METRICS.backpressureBuffered.help, type: 'gauge', aggregator: 'sum' },
      () => [{ labels: {}, value: monitor.counters().backpressure?.bufferedBytes ?? 0 }],
      fail('the buffered bytes'),
    );
    const unsubscribeBackpressure = subscribeBackpressure(
      monitor,
      config.maxRoutes,
      { name: 'Prometheus', site },
      {
        first() {
          for (const entry of [
            { name: names.backpressure, metric: backpressure },
            { name: names.drainWait, metric: drainWait },
          ]) {
            registry.registerMetric(entry.metric);
            registered.push(entry);
          }
          buffered.register(registry);
          registered.push({ name: names.backpressureBuffered, metric: buffered });
        },
        report({ kind, route, count }) {
          backpressure.inc({ kind, route }, count);
        },
        drain({ route, seconds }) {
          drainWait.observe({ route }, seconds);
        },
      },
    );
    // --- end backpressure ---
    // Outbound queueing (docs/outbound.md): registered with the first fetch() wait, so a service
    // that makes no fetch calls exposes no empty series.
    const outboundQueueWait = new Histogram({
      name: names.outboundQueueWait,
      help: METRICS.outboundQueueWait.help,
      labelNames: ['origin'],
      buckets: [...OUTBOUND_BUCKETS_SECONDS],
      registers: [],
    });
    const unsubscribeOutbound = subscribeOutbound(
      monitor,
      { name: 'Prometheus', site },
      {
        first() {
          registry.registerMetric(outboundQueueWait);
          registered.push({ name: names.outboundQueueWait, metric: outboundQueueWait });
        },
        wait({ origin, seconds }) {
          outboundQueueWait.observe({ origin }, seconds);
        },
      },
    );
    detach = () => {
      unsubscribeBackpressure();
      unsubscribeOutbound();
      stopConnections();
      unsubscribeJobs();
      unsubscribe();
      monitor.off('promise', onPromise);
      unregister();
    };
  }

  return {
    name: site,
    registry,
    get metricNames() {
      return registered.map((entry) => entry.name);
    },
    start,
    stop() {
      detach?.();
      detach = undefined;
    },
  };
}
