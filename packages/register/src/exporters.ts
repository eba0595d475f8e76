import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { Monitor } from '@loopsight/core';
import type { RegisterConfig } from './env.js';

type Warn = (line: string) => void;

// Loaded only when asked, so that prom-client is read only by services that want it, but
// synchronously: the exporter counts from the first stall, before the application's code runs.
const load = createRequire(import.meta.url);

/**
 * Prometheus metrics on their own port: the exporter writes into prom-client's default registry,
 * which this server serves (the application's own metrics there included). The server is
 * unref()'d: it never keeps the process alive.
 */
export function serveMetrics(monitor: Monitor, metrics: NonNullable<RegisterConfig['metrics']>, warn: Warn): Server | undefined {
  let prometheus: typeof import('@loopsight/prometheus');
  try {
    prometheus = load('@loopsight/prometheus') as typeof prometheus;
  } catch (error) {
    warn(
      `loopsight: LOOPSIGHT_METRICS_PORT needs prom-client (npm install prom-client): ${error instanceof Error ? error.message : String(error)}`,
    );
    return undefined;
  }
  monitor.attach(prometheus.prometheusExporter());
  const handler = prometheus.metricsHandler();
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === metrics.path || req.url?.startsWith(`${metrics.path}?`))) {
      void handler(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found; metrics are at ${metrics.path}\n`);
  });
  server.on('error', (error) => warn(`loopsight: the metrics server on port ${metrics.port} failed: ${error.message}`));
  server.listen(metrics.port, metrics.host);
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
          `loopsight: an OpenTelemetry SDK is registered but @loopsight/otel did not load: ${error instanceof Error ? error.message : String(error)}`,
        ),
    );
  };
  check();
  return () => {
    if (!done) check();
  };
}
