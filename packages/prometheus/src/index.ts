export { ROUTE_NONE, ROUTE_OTHER, ROUTE_UNKNOWN, ROUTE_UNROUTED } from '@loopsight/core';
export { prometheusExporter } from './exporter.js';
export { metricsHandler, type Scrape, scrape } from './handler.js';
export type { AnyRegistry, PrometheusExporter, PrometheusExporterOptions } from './types.js';
