import { createMonitor, currentScope, type RequestScope } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { otelExporter } from '@loopsight/otel';
import type { MeterProvider as ApiMeterProvider, Tracer, TracerProvider } from '@opentelemetry/api';
import { DataPointType } from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { frameworks, type TestApp } from '../../../test-support/apps.js';
import { sdkMeter as sharedSdkMeter } from './sdk-meter.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const apps: TestApp[] = [];
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
  for (const stop of stops.splice(0)) await stop();
});

const sdkMeter = () => sharedSdkMeter(stops);

async function start(name: string, options: object) {
  const framework = frameworks.find((f) => f.name === name);
  if (!framework) throw new Error(name);
  const app = await framework.start({ loopLag: { windowMs: 1000 }, promises: false, onReport: () => {}, ...options });
  apps.push(app);
  return app;
}

describe('metrics', () => {
  it('connection counts appear once an adapter counts connections, also on an exporter started before', async () => {
    const { meterProvider, collect } = sdkMeter();
    const monitor = createMonitor({ loopLag: false, promises: false, exporters: [otelExporter({ meterProvider })], onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    expect([...(await collect()).keys()].filter((name) => name.startsWith('loopsight.connections'))).toEqual([]);
    // What @loopsight/ws does per connection.
    const counter = internals(monitor).countConnections();
    counter.opened();
    counter.opened();
    counter.closed();
    const metrics = await collect();
    const value = (name: string) => metrics.get(name)?.dataPoints[0]?.value;
    expect([value('loopsight.connections.open'), value('loopsight.connections.opened'), value('loopsight.connections.closed')]).toEqual([
      1, 2, 1,
    ]);
    expect(metrics.get('loopsight.connections.open')?.descriptor.unit).toBe('{connection}');
  });

  it('reach a MeterProvider: semantic-convention loop metrics and loopsight.* with the blocking route', { retry: 2 }, async () => {
    const { meterProvider, collect } = sdkMeter();
    const app = await start('fastify 5', { exporters: [otelExporter({ meterProvider })] });
    await sleep(300);
    await (await request(`${app.url}/block/350`)).body.dump();
    await (await request(`${app.url}/users/1`, { headers: { 'x-request-id': 'bad id!' } })).body.dump();
    await sleep(1100);
    const metrics = await collect();

    expect([...metrics.keys()].sort()).toEqual([
      'loopsight.correlation_ids.rejected',
      'loopsight.eventloop.stall.duration',
      'loopsight.eventloop.stalls',
      'loopsight.requests.inflight',
      'nodejs.eventloop.delay.max',
      'nodejs.eventloop.delay.mean',
      'nodejs.eventloop.delay.min',
      'nodejs.eventloop.delay.p50',
      'nodejs.eventloop.delay.p90',
      'nodejs.eventloop.delay.p99',
      'nodejs.eventloop.delay.stddev',
      'nodejs.eventloop.utilization',
    ]);
    const p99 = metrics.get('nodejs.eventloop.delay.p99');
    expect(p99?.descriptor.unit).toBe('s');
    expect(p99?.dataPointType).toBe(DataPointType.GAUGE);
    const utilization = metrics.get('nodejs.eventloop.utilization');
    expect(utilization?.descriptor.unit).toBe('1');
    const u = Number(utilization?.dataPoints[0]?.value);
    expect(u).toBeGreaterThanOrEqual(0);
    expect(u).toBeLessThanOrEqual(1);

    const stalls = metrics.get('loopsight.eventloop.stalls');
    expect(stalls?.dataPointType).toBe(DataPointType.SUM);
    expect(stalls?.dataPoints.map((p) => [p.attributes['http.route'], p.attributes['loopsight.stall.expected'], p.value])).toEqual([
      ['/block/:ms', false, 1],
    ]);
    const duration = metrics.get('loopsight.eventloop.stall.duration');
    expect(duration?.descriptor.unit).toBe('s');
    expect(duration?.dataPointType).toBe(DataPointType.HISTOGRAM);
    const rejected = metrics.get('loopsight.correlation_ids.rejected');
    expect(rejected?.dataPoints.find((p) => p.attributes['loopsight.reason'] === 'invalid')?.value).toBe(1);
    expect(metrics.get('loopsight.requests.inflight')?.dataPoints[0]?.value).toBe(0);
  });

  it('eventLoopMetrics: false leaves nodejs.eventloop.* to @opentelemetry/instrumentation-runtime-node', async () => {
    const { meterProvider, collect } = sdkMeter();
    const monitor = createMonitor({ exporters: [otelExporter({ meterProvider, eventLoopMetrics: false })], onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    const names = [...(await collect()).keys()];
    expect(names.filter((n) => n.startsWith('nodejs.'))).toEqual([]);
    expect(names).toContain('loopsight.requests.inflight');
  });

  it('promises by kind and route; stop() removes the observers', async () => {
    const { meterProvider, collect } = sdkMeter();
    const monitor = createMonitor({ exporters: [otelExporter({ meterProvider })], onReport: () => {} });
    monitor.start();
    const scope: RequestScope = { correlationId: 'p', route: '/orders/:id', startedAt: Date.now() };
    internals(monitor).report({ type: 'promise', kind: 'unhandled', stack: [], request: scope, ageMs: 3 });
    internals(monitor).report({ type: 'promise', kind: 'floating', stack: [], ageMs: 3 });
    const promises = (await collect()).get('loopsight.promises');
    expect(promises?.dataPoints.map((p) => [p.attributes['loopsight.promise.kind'], p.attributes['http.route'], p.value]).sort()).toEqual([
      ['floating', '__none__', 1],
      ['unhandled', '/orders/:id', 1],
    ]);
    await monitor.stop();
    let reads = 0;
    const loopStats = monitor.loopStats.bind(monitor);
    monitor.loopStats = () => {
      reads++;
      return loopStats();
    };
    await collect();
    expect(reads).toBe(0);
  });
});

describe('fail safe', () => {
  const throwingMeterProvider: ApiMeterProvider = {
    getMeter() {
      throw new Error('meter provider down');
    },
  };
  const throwingTracerProvider: TracerProvider = {
    getTracer() {
      throw new Error('tracer provider down');
    },
  };

  it('throwing providers: requests still succeed, one warning each', async () => {
    const warnings: string[] = [];
    const app = await start('express 5', {
      exporters: [otelExporter({ meterProvider: throwingMeterProvider, tracerProvider: throwingTracerProvider })],
      logger: { warn: (m: string) => warnings.push(m) },
    });
    const statuses = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await request(`${app.url}/users/${i}`);
        await res.body.dump();
        return res.statusCode;
      }),
    );
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(warnings.sort()).toEqual([
      expect.stringContaining('could not create its metrics: meter provider down'),
      expect.stringContaining('could not create its tracer: tracer provider down'),
    ]);
  });

  it('a tracer that throws on every span, a loop read that throws: contained, one warning each', async () => {
    const { meterProvider, collect } = sdkMeter();
    const tracer = {
      startSpan() {
        throw new Error('no spans today');
      },
    } as unknown as Tracer;
    const warnings: string[] = [];
    const monitor = createMonitor({
      exporters: [otelExporter({ meterProvider, tracerProvider: { getTracer: () => tracer } })],
      logger: { warn: (m) => warnings.push(m) },
      onReport: () => {},
    });
    monitor.loopStats = () => {
      throw new Error('sampler gone');
    };
    monitor.start();
    stops.push(() => monitor.stop());
    // A span to attach to, so that the tracer is used.
    const { context, trace, ROOT_CONTEXT } = await import('@opentelemetry/api');
    const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    stops.push(async () => {
      context.disable();
    });
    const parent = trace.wrapSpanContext({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 });
    for (let i = 0; i < 3; i++) {
      context.with(trace.setSpan(ROOT_CONTEXT, parent), () =>
        monitor.run({ correlationId: `j${i}` }, () => {
          internals(monitor).report({
            type: 'stall',
            durationMs: 150,
            at: Date.now() - 150,
            stack: [],
            stackSource: 'pause',
            inflight: 1,
            request: currentScope() as RequestScope,
          });
        }),
      );
      await collect();
    }
    expect(warnings.sort()).toEqual([
      expect.stringContaining('could not read the loop stats: sampler gone'),
      expect.stringContaining('could not record a stall: no spans today'),
    ]);
    // Counted every time, said once.
    expect(monitor.counters().internalErrors).toBe(6);
  });

  it('bad options throw a TypeError naming them', () => {
    expect(() => otelExporter({ maxRoutes: 0 })).toThrow(/options.maxRoutes/);
    expect(() => otelExporter({ maxTrackedSpans: -1 })).toThrow(/options.maxTrackedSpans/);
    expect(() => otelExporter({ maxTrackedSpans: 100_001 })).toThrow(/options.maxTrackedSpans must be a positive integer up to 100000/);
    expect(() => otelExporter({ maxTrackedSpans: 100_000 })).not.toThrow();
    // biome-ignore lint/suspicious/noExplicitAny: invalid on purpose
    expect(() => otelExporter({ meterProvider: {} as any })).toThrow(/options.meterProvider/);
    // biome-ignore lint/suspicious/noExplicitAny: invalid on purpose
    expect(() => otelExporter({ traces: 'yes' as any })).toThrow(/options.traces/);
  });
});
