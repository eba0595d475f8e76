import type { Exporter } from '@loopsight/core';
import type { MeterProvider, TracerProvider } from '@opentelemetry/api';

export interface OtelExporterOptions {
  /** Where the metrics go. Default: the global MeterProvider of `@opentelemetry/api`, read when the monitor starts. */
  meterProvider?: MeterProvider;
  /** Where stall spans go. Default: the global TracerProvider of `@opentelemetry/api`. */
  tracerProvider?: TracerProvider;
  /**
   * Report `nodejs.eventloop.delay.*` and `nodejs.eventloop.utilization`. Default true; set false
   * when `@opentelemetry/instrumentation-runtime-node` reports them already (see docs/otel.md).
   */
  eventLoopMetrics?: boolean;
  /** Stall spans, promise events and the correlation id on the server span. Default true. */
  traces?: boolean;
  /** Distinct `http.route` values on loopsight metrics; later templates count as `__other__`. Default 100. */
  maxRoutes?: number;
  /**
   * Requests whose span is remembered, for reports that arrive after the request: a stall's comes
   * within a second, a leaked promise's `leakAfterMs` (5 s) later. The last 10,000 requests by
   * default: raise it above 2,000 requests per second if leaked promises should still find their trace.
   */
  maxTrackedSpans?: number;
}

/** The exporter: attach it to a monitor (`exporters: [...]` or `monitor.attach()`). */
export interface OtelExporter extends Exporter {}
