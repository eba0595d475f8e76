import diagnosticsChannel from 'node:diagnostics_channel';
import { CHANNELS, type Monitor, type PromiseReport, type RequestScope } from '@loopsight/core';
import {
  DEFAULT_MAX_ROUTES,
  reportLabels,
  subscribeBackpressure,
  subscribeJobs,
  subscribeOutbound,
  subscribeStalls,
} from '@loopsight/core/exporter';
import { boolean, custom, invalidOption, isPlainObject, positive, type Rule, resolveShape, type Shape, warning } from '@loopsight/options';
import { metrics, trace } from '@opentelemetry/api';
import { createMetrics, type LoopsightMetrics } from './metrics.js';
import { SCOPE_NAME, SCOPE_VERSION } from './names.js';
import { recordPromise, recordStall, SpanTracker } from './spans.js';
import type { OtelExporter, OtelExporterOptions } from './types.js';

interface Config {
  readonly meterProvider: OtelExporterOptions['meterProvider'];
  readonly tracerProvider: OtelExporterOptions['tracerProvider'];
  readonly eventLoopMetrics: boolean;
  readonly traces: boolean;
  readonly maxRoutes: number;
  readonly maxTrackedSpans: number;
}

// Each remembered span holds its context and a map entry (about 200 bytes): 100,000 is ~20 MB.
const MAX_TRACKED_SPANS = 100_000;

const provider = (method: 'getMeter' | 'getTracer', accepted: string) =>
  custom(accepted, (value, path) =>
    value === undefined || (isPlainObject(value) && typeof value[method] === 'function') ? value : invalidOption(path, accepted, value),
  );

const SHAPE = {
  meterProvider: provider('getMeter', 'an OpenTelemetry MeterProvider') as Rule<OtelExporterOptions['meterProvider']>,
  tracerProvider: provider('getTracer', 'an OpenTelemetry TracerProvider') as Rule<OtelExporterOptions['tracerProvider']>,
  eventLoopMetrics: boolean(true),
  traces: boolean(true),
  maxRoutes: positive({ integer: true, default: DEFAULT_MAX_ROUTES }),
  maxTrackedSpans: positive({ integer: true, max: MAX_TRACKED_SPANS, default: 10_000 }),
} satisfies Shape;

function resolveOptions(options: OtelExporterOptions | undefined): Config {
  return resolveShape(SHAPE, options);
}

/**
 * OpenTelemetry for a loopsight Monitor. Metrics: `nodejs.eventloop.delay.*` and
 * `nodejs.eventloop.utilization` (semantic conventions), `loopsight.*` for stalls, promises, requests
 * in flight and refused ids. Traces: the server span of every request gets `loopsight.correlation_id`;
 * a stall becomes a `loopsight.stall` child span of the request that blocked, with its real start,
 * end and `code.stacktrace`; promise reports become span events. Loopsight never creates a server
 * span: without an HTTP instrumentation there is no span to add to, and only the metrics flow.
 *
 * @example
 * const sdk = new NodeSDK({ instrumentations: [new HttpInstrumentation()], ... });
 * sdk.start();
 * app.use(loopsight({ exporters: [otelExporter()] }));
 */
export function otelExporter(options?: OtelExporterOptions): OtelExporter {
  const config = resolveOptions(options);
  let detach: (() => void) | undefined;

  function start(monitor: Monitor): void {
    if (detach) return;
    const undo: (() => void)[] = [];
    const labels = reportLabels(config.maxRoutes);
    try {
      let instruments: LoopsightMetrics | undefined;
      try {
        const meter = (config.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE_NAME, SCOPE_VERSION);
        instruments = createMetrics(meter, monitor, labels, config);
        const created = instruments;
        undo.push(() => created.stop());
      } catch (error) {
        monitor.reportError(
          'the OTel exporter could not create its metrics',
          warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: 'otel:metrics' }),
        );
      }

      let tracker: SpanTracker | undefined;
      let tracer: ReturnType<typeof trace.getTracer> | undefined;
      if (config.traces) {
        try {
          tracer = (config.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE_NAME, SCOPE_VERSION);
          tracker = new SpanTracker(config.maxTrackedSpans);
        } catch (error) {
          monitor.reportError(
            'the OTel exporter could not create its tracer',
            warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: 'otel:tracer' }),
          );
        }
      }

      if (tracker) {
        const spans = tracker;
        // Runs in the request path, in the adapter's context: a span lookup and one attribute.
        const onStart = (message: unknown) => {
          try {
            spans.begin(message as RequestScope);
          } catch (error) {
            // diagnostics_channel would rethrow on the next tick: an uncaught exception.
            monitor.reportError(
              'the OTel exporter could not tag a request span',
              warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: 'otel:span' }),
            );
          }
        };
        diagnosticsChannel.subscribe(CHANNELS.requestStart, onStart);
        undo.push(() => {
          diagnosticsChannel.unsubscribe(CHANNELS.requestStart, onStart);
          spans.clear();
        });
      }

      // Every stall, the worker threads' too, through one subscription; a stall span for the main
      // thread's requests only (a worker's has no request span here). Declared blocking is counted,
      // not traced: it has no stack and no report line either.
      const unsubscribe = subscribeStalls(
        monitor,
        labels,
        { name: 'OTel', site: 'otel' },
        {
          stall(counted) {
            instruments?.stall(counted);
            if (tracer && tracker && !counted.thread && !counted.report.expected) recordStall(tracer, tracker, counted.report);
          },
        },
      );
      undo.push(unsubscribe);
      undo.push(subscribeJobs(monitor, config.maxRoutes, { name: 'OTel', site: 'otel' }, { job: (job) => instruments?.job(job) }));
      // --- backpressure ---
      undo.push(
        subscribeBackpressure(
          monitor,
          config.maxRoutes,
          { name: 'OTel', site: 'otel' },
          { report: (counted) => instruments?.backpressure(counted), drain: (counted) => instruments?.drain(counted) },
        ),
      );
      // --- end backpressure ---
      // Outbound queueing (docs/outbound.md).
      undo.push(subscribeOutbound(monitor, { name: 'OTel', site: 'otel' }, { wait: (wait) => instruments?.outboundWait(wait) }));
      const onPromise = (report: PromiseReport) => {
        try {
          instruments?.promise(report);
          if (tracer && tracker) recordPromise(tracer, tracker, report);
        } catch (error) {
          monitor.reportError(
            'the OTel exporter could not record a promise',
            warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: 'otel:promise' }),
          );
        }
      };
      monitor.on('promise', onPromise);
      undo.push(() => monitor.off('promise', onPromise));
    } finally {
      detach = () => {
        for (const fn of undo.reverse()) {
          try {
            fn();
          } catch (error) {
            monitor.reportError(
              'the OTel exporter could not stop cleanly',
              warning('LOOPSIGHT_EXPORTER_FAILED', error, { site: 'otel:stop' }),
            );
          }
        }
      };
    }
  }

  return {
    name: '@loopsight/otel',
    start,
    stop() {
      detach?.();
      detach = undefined;
    },
  };
}
