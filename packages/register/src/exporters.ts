import type { Server } from 'node:http';
import type { Monitor, StallReport } from '@loopsight/core';
import { coded, type RegisterConfig } from './env.js';
import { load } from './load.js';

type Warn = (line: string) => void;

/** Stalls kept for the Prometheus exporter until the process serves (it is loaded then): the startup ones. */
const MAX_EARLY_STALLS = 32;

/**
 * Keeps the stalls of the startup phase for an exporter attached later, so that it counts them
 * (under `__startup__`) although prom-client was loaded only once the process served. At most
 * MAX_EARLY_STALLS; `replay` hands them to the listener the exporter registers, once.
 */
export function earlyStalls(monitor: Monitor): { replayInto(monitor: Monitor): Monitor } {
  let kept: StallReport[] | undefined = [];
  const keep = (report: StallReport) => {
    if (kept !== undefined && kept.length < MAX_EARLY_STALLS) kept.push(report);
  };
  monitor.on('stall', keep);
  return {
    // The monitor as the exporter sees it while it starts: its 'stall' listener gets the kept reports.
    replayInto(target) {
      monitor.off('stall', keep);
      const reports = kept ?? [];
      kept = undefined;
      return new Proxy(target, {
        get(t, key) {
          if (key === 'on')
            return (event: 'stall', fn: (r: StallReport) => void) => {
              t.on(event, fn);
              if (event === 'stall') for (const r of reports) fn(r);
              return t;
            };
          const value: unknown = Reflect.get(t, key, t);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
        },
      });
    },
  };
}

/**
 * Prometheus metrics on their own port, from the first `listen()` of the application's HTTP server
 * on: the exporter writes into prom-client's default registry, which this server serves (the
 * application's own metrics there included). The server is unref()'d: it never keeps the process
 * alive. In a `cluster` worker it binds the port plus the worker's id, on its own (exclusive): a
 * port shared through the primary would answer each scrape from another worker.
 */
export function serveMetrics(
  monitor: Monitor,
  metrics: NonNullable<RegisterConfig['metrics']>,
  warn: Warn,
  early?: ReturnType<typeof earlyStalls>,
): Server | undefined {
  let prometheus: typeof import('@loopsight/prometheus');
  try {
    prometheus = load.prometheus();
  } catch (error) {
    warn(
      coded(
        'LOOPSIGHT_PRELOAD',
        `loopsight: LOOPSIGHT_METRICS_PORT needs prom-client (npm install prom-client): ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
    return undefined;
  }
  const exporter = prometheus.prometheusExporter();
  monitor.attach(
    early === undefined
      ? exporter
      : { name: exporter.name, start: (m: Monitor) => exporter.start(early.replayInto(m)), stop: () => exporter.stop?.() },
  );
  const handler = prometheus.metricsHandler();
  const server = load.http().createServer((req, res) => {
    if (req.method === 'GET' && (req.url === metrics.path || req.url?.startsWith(`${metrics.path}?`))) {
      void handler(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found; metrics are at ${metrics.path}\n`);
  });
  const workerId = load.cluster().worker?.id;
  const port = workerId !== undefined && metrics.port !== 0 ? metrics.port + workerId : metrics.port;
  server.on('error', (error) => warn(coded('LOOPSIGHT_PRELOAD', `loopsight: the metrics server on port ${port} failed: ${error.message}`)));
  try {
    server.listen({ port, host: metrics.host, exclusive: true });
  } catch (error) {
    // Port plus a cluster worker's id beyond 65535.
    warn(
      coded(
        'LOOPSIGHT_PRELOAD',
        `loopsight: the metrics server on port ${port} failed: ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
    return undefined;
  }
  server.unref();
  return server;
}

const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1');

/** Whether an OpenTelemetry SDK registered a global meter or tracer provider (read without loading the API). */
function otelRegistered(): boolean {
  const api = (globalThis as { [OTEL_GLOBAL]?: { metrics?: unknown; trace?: unknown } })[OTEL_GLOBAL];
  return api?.metrics !== undefined || api?.trace !== undefined;
}

/**
 * The OpenTelemetry exporter, once an SDK has registered global providers: the exporter reads them
 * when it starts, and an SDK is often started by the application after this preload ran. Checked
 * now and at each of the first requests until found or `attempts` run out.
 */
export function otelWhenRegistered(monitor: Monitor, warn: Warn): () => void {
  let done = false;
  let attempts = 1_000;
  const check = () => {
    if (done || !otelRegistered()) {
      if (--attempts <= 0) done = true;
      return;
    }
    done = true;
    import('@loopsight/otel').then(
      ({ otelExporter }) => monitor.attach(otelExporter()),
      (error: unknown) =>
        warn(
          coded(
            'LOOPSIGHT_PRELOAD',
            `loopsight: an OpenTelemetry SDK is registered but @loopsight/otel did not load: ${error instanceof Error ? error.message : String(error)}`,
          ),
        ),
    );
  };
  check();
  return () => {
    if (!done) check();
  };
}
