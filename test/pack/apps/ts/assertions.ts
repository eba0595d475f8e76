// Compiled, never run: it compiles only if the published types say what the docs say, and the
// lines marked @ts-expect-error prove the types are not `any`.
import { correlationHeaders, getCorrelationId, pinoMixin, withCorrelationId } from '@loopsight/context';
import {
  type BackpressureReport,
  type CorrelationOptions,
  createMonitor,
  currentScope,
  type Exporter,
  type Health,
  type LoopLagOptions,
  type LoopStats,
  type Monitor,
  type MonitorCounters,
  type MonitorOptions,
  type PromiseOptions,
  type PromiseReport,
  type Report,
  type RequestRecord,
  type RequestScope,
  type ShedInfo,
  type ShedOptions,
  type ShedReason,
  type StackFrame,
  type StallReport,
} from '@loopsight/core';
import { loopsight as expressLoopsight, type LoopsightExpressOptions } from '@loopsight/express';
import { loopsight as fastifyLoopsight, type LoopsightFastifyOptions } from '@loopsight/fastify';
import { loopsight as koaLoopsight, type LoopsightKoaOptions } from '@loopsight/koa';
import type { OtelExporterOptions } from '@loopsight/otel';
import type { PrometheusExporterOptions } from '@loopsight/prometheus';
import Fastify from 'fastify';

export async function assertions(): Promise<void> {
  const options: MonitorOptions = {
    loopLag: { stallThresholdMs: 200, captureStacks: true },
    correlation: { header: 'x-correlation-id', accept: [], validate: /^[a-z0-9-]+$/, generate: () => 'id' },
    // Every kind a report line is written for: stall, promise and backpressure reports.
    onReport: (report: Report) => void (report.type === 'backpressure' ? report.bufferedBytes : report.type),
  };
  const monitor = createMonitor(options);
  monitor.start();
  const stats: LoopStats = monitor.loopStats();
  const p99: number = stats.p99;
  monitor.on('stall', (r: StallReport) => r.stack.map((frame) => frame.functionName));
  monitor.on('promise', (r: PromiseReport) => r.kind);
  monitor.on('backpressure', (r: BackpressureReport) => r.request?.correlationId ?? r.highWaterMark);
  monitor.on('request', (r: RequestRecord) => r.durationMs);
  const inflight: RequestScope[] = monitor.inflight();
  const scope: RequestScope | undefined = currentScope();
  const id: string | undefined = getCorrelationId();
  const doubled: number = monitor.run({ correlationId: 'job-1', route: 'job:nightly' }, () => p99 * 2);
  const headers: Record<string, string> = correlationHeaders();
  const fromId: string = withCorrelationId('job-2', () => `${id}`);
  const mixin: { correlationId?: string } = pinoMixin()();
  void [inflight, scope, doubled, headers, fromId, mixin];

  // Every type a user names comes from a root entry.
  const shed: ShedOptions = { maxEventLoopDelayMs: 200, onShed: (info: ShedInfo) => void info.reason, exempt: ['/health'] };
  const reason: ShedReason = 'event_loop_delay';
  const loopLag: LoopLagOptions = { stallThresholdMs: 150 };
  const promises: PromiseOptions = { mode: 'full' };
  const correlation: CorrelationOptions = { header: 'x-trace-id' };
  const health: Health = monitor.health();
  const counters: MonitorCounters = monitor.counters();
  const culprit: StackFrame | undefined = ((r: StallReport) => r.culprit)({} as StallReport);
  const exporter: Exporter = { name: 'mine', start: (m: Monitor) => void m.loopStats() };
  const adapterOptions: [LoopsightExpressOptions, LoopsightFastifyOptions, LoopsightKoaOptions] = [
    { shed },
    { loopLag },
    { promises, correlation },
  ];
  const exporterOptions: [PrometheusExporterOptions, OtelExporterOptions] = [{ prefix: 'app_' }, { maxRoutes: 50 }];
  void [reason, health.status, counters.internalErrors, culprit, exporter, adapterOptions, exporterOptions];

  // One monitor shared by every adapter.
  expressLoopsight({ monitor });
  koaLoopsight({ monitor });
  await Fastify().register(fastifyLoopsight, { monitor });
  await monitor.stop();

  // @ts-expect-error stallThresholdMs is a number
  createMonitor({ loopLag: { stallThresholdMs: '200' } });
  // @ts-expect-error no such event
  monitor.on('stal', () => {});
  // @ts-expect-error an id is a string
  withCorrelationId(42, () => {});
  // @ts-expect-error getCorrelationId() may be undefined outside a request
  const sure: string = getCorrelationId();
  void sure;
}
