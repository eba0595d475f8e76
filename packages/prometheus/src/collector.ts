import type { Aggregator, Metric } from 'prom-client';
import type { AnyRegistry } from './types.js';

export interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

type MetricKind = 'counter' | 'gauge' | 'histogram';

/**
 * A metric whose samples are read at scrape time from the monitor, in prom-client's metric shape
 * (what `Registry#metrics()` and `AggregatorRegistry` read: name, help, type, aggregator, `get()`).
 * prom-client's own Histogram can only `observe()` one value at a time; the loop delay arrives as
 * cumulative bucket counts, so it is exposed as they are.
 *
 * A failing read never fails the scrape: it is reported once and the metric has no samples.
 */
export class PullMetric {
  name: string;
  readonly help: string;
  readonly type: MetricKind;
  readonly aggregator: Aggregator;
  readonly labelNames: readonly string[];
  readonly #read: () => Sample[];
  readonly #onError: (error: unknown) => void;

  constructor(
    spec: { name: string; help: string; type: MetricKind; aggregator: Aggregator; labelNames?: readonly string[] },
    read: () => Sample[],
    onError: (error: unknown) => void,
  ) {
    this.name = spec.name;
    this.help = spec.help;
    this.type = spec.type;
    this.aggregator = spec.aggregator;
    this.labelNames = spec.labelNames ?? [];
    this.#read = read;
    this.#onError = onError;
  }

  async get(): Promise<{ name: string; help: string; type: MetricKind; values: Sample[]; aggregator: Aggregator }> {
    let values: Sample[];
    try {
      values = this.#read();
    } catch (error) {
      this.#onError(error);
      values = [];
    }
    // `this.name`, not the constructor's: an OpenMetrics registry renames counters in place.
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** Registry#resetMetrics(): nothing to reset, the monitor owns the figures. */
  reset(): void {}

  register(registry: AnyRegistry): void {
    // The shape prom-client's registry reads; its typings only name its own classes.
    registry.registerMetric(this as unknown as Metric);
  }
}
