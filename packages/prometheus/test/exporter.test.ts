import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import { createMonitor, type RequestScope } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import { metricsHandler, prometheusExporter, scrape } from '@loopsight/prometheus';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { AggregatorRegistry, Counter, collectDefaultMetrics, Registry } from 'prom-client';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { frameworks } from '../../../test-support/apps.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const quiet = { warn: () => {} };

/** `# TYPE` lines of the loopsight metrics, in order. */
function types(text: string): string[] {
  return text.split('\n').filter((line) => line.startsWith('# TYPE loopsight_'));
}

/** Distinct values of one label over the samples of one metric. */
function labelValues(text: string, metric: string, label: string): string[] {
  const values = new Set<string>();
  const pattern = new RegExp(`${label}="([^"]*)"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const match = pattern.exec(line);
    if (match?.[1] !== undefined) values.add(match[1]);
  }
  return [...values].sort();
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

describe('/metrics text', () => {
  it('names and types as specified, beside prom-client default metrics', async () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const monitor = createMonitor({ loopLag: { windowMs: 1000 }, exporters: [prometheusExporter({ registry })], onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    await sleep(1100);
    const text = await registry.metrics();
    expect(types(text)).toMatchInlineSnapshot(`
      [
        "# TYPE loopsight_event_loop_delay_seconds histogram",
        "# TYPE loopsight_event_loop_utilization gauge",
        "# TYPE loopsight_event_loop_stalls_total counter",
        "# TYPE loopsight_event_loop_stall_seconds histogram",
        "# TYPE loopsight_promises_total counter",
        "# TYPE loopsight_requests_inflight gauge",
        "# TYPE loopsight_correlation_ids_rejected_total counter",
      ]
    `);
    // The loop delay is a histogram in seconds, 1 ms to 10 s, with +Inf = _count.
    const buckets = text.split('\n').filter((l) => l.startsWith('loopsight_event_loop_delay_seconds_bucket'));
    expect(buckets.map((l) => /le="([^"]+)"/.exec(l)?.[1])).toEqual([
      '0.001',
      '0.0025',
      '0.005',
      '0.01',
      '0.025',
      '0.05',
      '0.1',
      '0.25',
      '0.5',
      '1',
      '2.5',
      '5',
      '10',
      '+Inf',
    ]);
    const count = sample(text, 'loopsight_event_loop_delay_seconds_count') ?? 0;
    expect(count).toBeGreaterThan(0);
    expect(sample(text, 'loopsight_event_loop_delay_seconds_bucket{le="+Inf"}')).toBe(count);
    const utilization = sample(text, 'loopsight_event_loop_utilization') ?? -1;
    expect(utilization).toBeGreaterThanOrEqual(0);
    expect(utilization).toBeLessThanOrEqual(1);
    // prom-client's own loop metrics sit beside ours under their own names.
    expect(text).toContain('# TYPE nodejs_eventloop_lag_p99_seconds gauge');
    expect(text).toContain('# TYPE process_cpu_seconds_total counter');
    expect(text).toContain('loopsight_correlation_ids_rejected_total{reason="invalid"} 0');
  });

  it('two scrapers, or two registries, read the same counts: nothing is reset by a read', async () => {
    const a = new Registry();
    const b = new Registry();
    const monitor = createMonitor({
      loopLag: { windowMs: 1000 },
      exporters: [prometheusExporter({ registry: a }), prometheusExporter({ registry: b })],
      onReport: () => {},
    });
    monitor.start();
    stops.push(() => monitor.stop());
    await sleep(1100);
    const delayLines = (text: string) => text.split('\n').filter((l) => l.startsWith('loopsight_event_loop_delay_seconds'));
    const [first, second, other] = await Promise.all([a.metrics(), a.metrics(), b.metrics()]);
    expect(delayLines(first)).toEqual(delayLines(second));
    expect(delayLines(first)).toEqual(delayLines(other));
    // And the counts only grow from window to window.
    await sleep(1000);
    const later = await a.metrics();
    const count = (text: string) => sample(text, 'loopsight_event_loop_delay_seconds_count') ?? 0;
    expect(count(later)).toBeGreaterThan(count(first));
  });

  it('one exporter per registry and prefix; a name clash is reported once and nothing else breaks', async () => {
    const registry = new Registry();
    new Counter({ name: 'loopsight_promises_total', help: 'someone else', registers: [registry] });
    const warnings: string[] = [];
    const monitor = createMonitor({ logger: { warn: (m) => warnings.push(m) }, onReport: () => {} });
    monitor.attach(prometheusExporter({ registry })).attach(prometheusExporter({ registry }));
    monitor.start();
    stops.push(() => monitor.stop());
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/Prometheus exporter could not register its metrics.*loopsight_promises_total/);
    // Rolled back: only the other owner's metric is left.
    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(['loopsight_promises_total']);
    // A prefix keeps two exporters apart in one registry.
    const other = prometheusExporter({ registry, prefix: 'api_' });
    monitor.attach(other);
    expect(other.metricNames).toHaveLength(7);
    expect(other.metricNames.every((name) => name.startsWith('api_') && registry.getSingleMetric(name) !== undefined)).toBe(true);
  });

  it('stop() unregisters; start() again registers', async () => {
    const registry = new Registry();
    const exporter = prometheusExporter({ registry });
    const monitor = createMonitor({ exporters: [exporter], onReport: () => {} });
    monitor.start();
    expect(registry.getMetricsAsArray()).toHaveLength(7);
    await monitor.stop();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
    monitor.start();
    stops.push(() => monitor.stop());
    expect(registry.getMetricsAsArray()).toHaveLength(7);
  });

  it('OpenMetrics registries get counters named the OpenMetrics way', async () => {
    const registry = new Registry(Registry.OPENMETRICS_CONTENT_TYPE);
    const monitor = createMonitor({ exporters: [prometheusExporter({ registry })], onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    const text = await registry.metrics();
    expect(text).toContain('# TYPE loopsight_correlation_ids_rejected counter');
    expect(text).toContain('loopsight_correlation_ids_rejected_total{reason="invalid"} 0');
    expect(text).not.toContain('_total_total');
  });

  it('node:cluster: AggregatorRegistry sums the histogram buckets of every worker', async () => {
    const registries = [new Registry(), new Registry()];
    const monitors = registries.map((registry) =>
      createMonitor({ loopLag: { windowMs: 1000 }, exporters: [prometheusExporter({ registry })], onReport: () => {} }),
    );
    for (const m of monitors) {
      m.start();
      stops.push(() => m.stop());
    }
    await sleep(1100);
    const jsons = await Promise.all(registries.map((r) => r.getMetricsAsJSON()));
    const text = await AggregatorRegistry.aggregate(jsons).metrics();
    const counts = await Promise.all(
      registries.map(async (r) => sample(await r.metrics(), 'loopsight_event_loop_delay_seconds_count') ?? 0),
    );
    expect(sample(text, 'loopsight_event_loop_delay_seconds_count')).toBe((counts[0] ?? 0) + (counts[1] ?? 0));
    expect(text).toContain('# TYPE loopsight_event_loop_delay_seconds histogram');
  });
});

describe('route labels', () => {
  for (const framework of frameworks) {
    it(`${framework.name}: 300 distinct /users/:id paths give one route label value`, async () => {
      const registry = new Registry();
      const app = await framework.start({ exporters: [prometheusExporter({ registry })], onReport: () => {} });
      stops.push(() => app.close());
      // A report for every request, attributed to the request's own scope, the way the promise
      // tracker attributes a floating promise (listeners run in the request's scope).
      app.monitor.on('request', (record) => {
        if (record.route === undefined || !record.route.startsWith('/users')) return;
        const scope: RequestScope = { correlationId: record.correlationId, route: record.route, startedAt: record.startedAt };
        internals(app.monitor).report({ type: 'promise', kind: 'floating', stack: [], request: scope, ageMs: 0 });
      });
      for (let i = 0; i < 300; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, async (_, j) => {
            const res = await request(`${app.url}/users/${i + j}-${Math.random().toString(36).slice(2)}`);
            await res.body.dump();
          }),
        );
      }
      await sleep(20);
      const text = (await scrape(registry)).body;
      expect(labelValues(text, 'loopsight_promises_total', 'route')).toEqual(['/users/:id']);
      expect(sample(text, 'loopsight_promises_total{kind="floating",route="/users/:id"}')).toBe(300);
    });
  }

  it('past maxRoutes distinct templates, new ones count as __other__; fixed labels for no request, an unnamed one, no route', async () => {
    const registry = new Registry();
    const monitor = createMonitor({ exporters: [prometheusExporter({ registry, maxRoutes: 3 })], onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    const stall = (request?: RequestScope) =>
      internals(monitor).report({
        type: 'stall',
        durationMs: 120,
        at: Date.now(),
        stack: [],
        stackSource: 'none',
        inflight: 0,
        ...(request ? { request } : {}),
      });
    for (let i = 0; i < 10; i++) stall({ correlationId: `c${i}`, route: `/r${i}`, startedAt: Date.now() });
    stall({ correlationId: 'x', route: '/r0', startedAt: Date.now() });
    stall();
    internals(monitor).report({ type: 'stall', durationMs: 120, at: Date.now(), stack: [], stackSource: 'late-pause', inflight: 3 });
    stall({ correlationId: 'y', startedAt: Date.now() });
    const text = await registry.metrics();
    expect(labelValues(text, 'loopsight_event_loop_stalls_total', 'route')).toEqual([
      '/r0',
      '/r1',
      '/r2',
      '__none__',
      '__other__',
      '__unknown__',
      '__unrouted__',
    ]);
    expect(sample(text, 'loopsight_event_loop_stalls_total{route="__other__",expected="false"}')).toBe(7);
    expect(sample(text, 'loopsight_event_loop_stalls_total{route="/r0",expected="false"}')).toBe(2);
    expect(sample(text, 'loopsight_event_loop_stall_seconds_count{route="/r0"}')).toBe(2);
  });
});

describe('metricsHandler() and scrape() on every framework', () => {
  async function check(url: string, registry: Registry): Promise<void> {
    const res = await request(`${url}/metrics`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(registry.contentType);
    const text = await res.body.text();
    expect(text).toContain('# TYPE loopsight_event_loop_delay_seconds histogram');
  }

  it('express', async () => {
    const registry = new Registry();
    const app = express();
    const middleware = expressLoopsight({ exporters: [prometheusExporter({ registry })] });
    app.use(middleware);
    app.get('/metrics', metricsHandler(registry));
    const server = createServer(app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    stops.push(async () => {
      await new Promise((resolve) => server.close(resolve));
      await middleware.monitor.stop();
    });
    await check(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, registry);
  });

  it('koa', async () => {
    const registry = new Registry();
    const app = new Koa();
    const middleware = koaLoopsight({ exporters: [prometheusExporter({ registry })] });
    app.use(middleware);
    const router = new Router();
    router.get('/metrics', async (ctx) => {
      const { contentType, body } = await scrape(registry);
      ctx.type = contentType;
      ctx.body = body;
    });
    app.use(router.routes());
    const server = createServer(app.callback()).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    stops.push(async () => {
      await new Promise((resolve) => server.close(resolve));
      await middleware.monitor.stop();
    });
    await check(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, registry);
  });

  it('fastify', async () => {
    const registry = new Registry();
    const app = Fastify();
    await app.register(fastifyLoopsight, { exporters: [prometheusExporter({ registry })] });
    app.get('/metrics', async (_request, reply) => {
      const { contentType, body } = await scrape(registry);
      return reply.type(contentType).send(body);
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    stops.push(() => app.close());
    await check(url, registry);
  });

  it('a failing registry answers 500, not a crash', async () => {
    const registry = new Registry();
    registry.metrics = async () => {
      throw new Error('registry down');
    };
    const server = createServer(metricsHandler(registry)).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    stops.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const res = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
    expect(res.statusCode).toBe(500);
    expect(await res.body.text()).toContain('registry down');
  });
});

describe('fail safe', () => {
  it('a throwing registry: requests still succeed, one warning', async () => {
    const registry = new Registry();
    registry.registerMetric = () => {
      throw new Error('registry refuses');
    };
    const warnings: string[] = [];
    const [framework] = frameworks;
    if (!framework) throw new Error('no framework');
    const app = await framework.start({
      exporters: [prometheusExporter({ registry })],
      logger: { warn: (m) => warnings.push(m) },
      onReport: () => {},
    });
    stops.push(() => app.close());
    const statuses = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await request(`${app.url}/users/${i}`);
        await res.body.dump();
        return res.statusCode;
      }),
    );
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('registry refuses');
  });

  it('a failing read at scrape time: the scrape still answers, one warning however many scrapes', async () => {
    const registry = new Registry();
    const warnings: string[] = [];
    const monitor = createMonitor({
      exporters: [prometheusExporter({ registry })],
      logger: { warn: (m) => warnings.push(m) },
      onReport: () => {},
    });
    monitor.loopDelayHistogram = () => {
      throw new Error('sampler gone');
    };
    monitor.start();
    stops.push(() => monitor.stop());
    for (let i = 0; i < 5; i++) {
      const text = await registry.metrics();
      expect(text).toContain('loopsight_requests_inflight 0');
      expect(text).not.toContain('loopsight_event_loop_delay_seconds_bucket');
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('sampler gone');
    expect(monitor.counters().internalErrors).toBe(5);
  });

  it('a throwing stall listener is contained', async () => {
    const registry = new Registry();
    const monitor = createMonitor({ exporters: [prometheusExporter({ registry })], logger: quiet, onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    const bad = { correlationId: 'x', startedAt: 0 } as RequestScope;
    Object.defineProperty(bad, 'route', {
      get() {
        throw new Error('bad scope');
      },
    });
    expect(() =>
      internals(monitor).report({
        type: 'stall',
        durationMs: 120,
        at: Date.now(),
        stack: [],
        stackSource: 'none',
        inflight: 0,
        request: bad,
      }),
    ).not.toThrow();
    expect(monitor.counters().internalErrors).toBe(1);
  });
});

describe('options', () => {
  it('bad options throw a TypeError naming them', () => {
    expect(() => prometheusExporter({ prefix: 'bad-prefix' })).toThrow(/options.prefix/);
    expect(() => prometheusExporter({ maxRoutes: 0 })).toThrow(/options.maxRoutes/);
    expect(() => prometheusExporter({ stallBuckets: [1, 0.5] })).toThrow(/options.stallBuckets/);
    // biome-ignore lint/suspicious/noExplicitAny: an invalid registry on purpose
    expect(() => prometheusExporter({ registry: {} as any })).toThrow(/options.registry/);
  });
});
