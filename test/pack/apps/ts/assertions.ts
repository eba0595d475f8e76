// Compiled, never run: it compiles only if the published types say what the docs say, and the
// lines marked @ts-expect-error prove the types are not `any`.
import { correlationHeaders, getCorrelationId, pinoMixin, withCorrelationId } from '@loopsight/context';
import {
  createMonitor,
  currentScope,
  type LoopStats,
  type MonitorOptions,
  type PromiseReport,
  type RequestRecord,
  type RequestScope,
  type StallReport,
} from '@loopsight/core';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import Fastify from 'fastify';

export async function assertions(): Promise<void> {
  const options: MonitorOptions = {
    loopLag: { stallThresholdMs: 200, captureStacks: true },
    correlation: { header: 'x-correlation-id', accept: [], validate: /^[a-z0-9-]+$/, generate: () => 'id' },
    onReport: (report: StallReport | PromiseReport) => void report.type,
  };
  const monitor = createMonitor(options);
  monitor.start();
  const stats: LoopStats = monitor.loopStats();
  const p99: number = stats.p99;
  monitor.on('stall', (r: StallReport) => r.stack.map((frame) => frame.functionName));
  monitor.on('promise', (r: PromiseReport) => r.kind);
  monitor.on('request', (r: RequestRecord) => r.durationMs);
  const inflight: RequestScope[] = monitor.inflight();
  const scope: RequestScope | undefined = currentScope();
  const id: string | undefined = getCorrelationId();
  const doubled: number = monitor.run({ correlationId: 'job-1', route: 'job:nightly' }, () => p99 * 2);
  const headers: Record<string, string> = correlationHeaders();
  const fromId: string = withCorrelationId('job-2', () => `${id}`);
  const mixin: { correlationId?: string } = pinoMixin()();
  void [inflight, scope, doubled, headers, fromId, mixin];

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
