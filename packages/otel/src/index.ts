export { otelExporter } from './exporter.js';
export type { OtelExporter, OtelExporterOptions } from './types.js';
