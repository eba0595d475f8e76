import type { Exporter } from '@loopsight/core';
import type { Registry, RegistryContentType } from 'prom-client';

/** A prom-client registry, Prometheus text or OpenMetrics. */
export type AnyRegistry = Registry<RegistryContentType>;

export interface PrometheusExporterOptions {
  /** Where the metrics are registered. Default: prom-client's default registry (`register`). */
  registry?: AnyRegistry;
  /** Prepended to every metric name. Default `'loopsight_'`. */
  prefix?: string;
  /**
   * Distinct `route` label values kept; later templates are counted under `__other__`, so a
   * router that hands out raw paths cannot explode the series count. The same cap bounds the `job`
   * label of queue jobs (@loopsight/bullmq), counted apart. Default 100.
   */
  maxRoutes?: number;
  /** Upper bounds of `loopsight_event_loop_stall_seconds`, in seconds. Default 0.05 s to 60 s. */
  stallBuckets?: readonly number[];
}

/** The exporter: attach it to a monitor (`exporters: [...]` or `monitor.attach()`). */
export interface PrometheusExporter extends Exporter {
  /** The registry the metrics live in: serve it on `/metrics`. */
  readonly registry: AnyRegistry;
  /** The names registered now, prefix included; empty before the monitor starts it. */
  readonly metricNames: readonly string[];
}
