import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import type { AdapterOptions, BackpressureReport, Monitor } from '@loopsight/core';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import { loopsight as koaLoopsight } from '@loopsight/koa';
import { prometheusExporter } from '@loopsight/prometheus';
import express from 'express';
import fastify from 'fastify';
import Koa from 'koa';
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { IGNORING_WRITE, slowClient, TOTAL_BYTES, writeAwaiting, writeIgnoring } from './backpressure.js';
import { until } from './until.js';

export interface StreamingApp {
  url: string;
  monitor: Monitor;
  close(): Promise<void>;
}

/** `/stream/ignore` and `/stream/await`, route template `/stream/:mode`, written straight to the Node response. */
type StreamingStart = (options: AdapterOptions) => Promise<StreamingApp>;

const write = (mode: string, res: ServerResponse, total?: number) =>
  mode === 'ignore' ? writeIgnoring(res, total) : writeAwaiting(res, total);
const sizeOf = (url: string | undefined) => {
  const size = new URL(url ?? '/', 'http://x').searchParams.get('bytes');
  return size === null ? undefined : Number(size);
};

async function listen(server: Server, monitor: Monitor): Promise<StreamingApp> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    monitor,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await monitor.stop();
    },
  };
}

export const streamingApps: Record<'express' | 'fastify' | 'koa', StreamingStart> = {
  async express(options) {
    const app = express();
    const middleware = expressLoopsight(options);
    app.use(middleware);
    app.get('/stream/:mode', (req, res) => void write(req.params.mode, res, sizeOf(req.url)));
    return listen(createServer(app), middleware.monitor);
  },
  async fastify(options) {
    const app = fastify();
    await app.register(fastifyLoopsight, options);
    app.get('/stream/:mode', (request, reply) => {
      reply.hijack();
      void write((request.params as { mode: string }).mode, reply.raw, sizeOf(request.url));
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return {
      url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
      monitor: app.loopsight,
      close: async () => {
        app.server.closeAllConnections();
        await app.close();
      },
    };
  },
  async koa(options) {
    const app = new Koa();
    const middleware = koaLoopsight(options);
    app.use(middleware);
    const router = new Router();
    router.get('/stream/:mode', (ctx) => {
      ctx.respond = false;
      ctx.res.statusCode = 200;
      void write(ctx.params.mode ?? '', ctx.res, sizeOf(ctx.url));
    });
    app.use(router.routes());
    return listen(createServer(app.callback()), middleware.monitor);
  },
};

/** The Prometheus text of one metric, or '' before it is registered. */
async function metric(registry: Registry, name: string): Promise<string> {
  return registry.getSingleMetric(name) ? registry.getSingleMetricAsString(name) : '';
}

/**
 * What every adapter must show for backpressure, on real servers: a route that writes 64 MB to a
 * slow client while ignoring write()'s false is reported once (route, id, the line of the write);
 * the same route awaiting 'drain' is not, and its waits are timed.
 */
export function backpressureSuite(name: keyof typeof streamingApps): void {
  describe(`${name}: backpressure`, () => {
    const cleanups: (() => unknown)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    async function start() {
      const registry = new Registry();
      const reports: BackpressureReport[] = [];
      const app = await streamingApps[name]({
        loopLag: false,
        promises: false,
        onReport: (r) => {
          if (r.type === 'backpressure') reports.push(r);
        },
        exporters: [prometheusExporter({ registry })],
      });
      cleanups.push(() => app.close());
      return { app, registry, reports };
    }

    it("reports a route that ignores write()'s false to a slow client: once, with its route, id and the line of the write", async () => {
      const { app, registry, reports } = await start();
      const client = await slowClient(app.url, '/stream/ignore', { 'x-request-id': `ignore-${name}` });
      cleanups.push(() => client.destroy());
      expect(await until(() => reports.length > 0, 10_000)).toBe(true);
      // Reading on for a while: the same response is never reported again as ignoring.
      await new Promise((resolve) => setTimeout(resolve, 300));
      client.destroy();
      const ignored = reports.filter((r) => r.kind === 'ignored');
      expect(ignored).toHaveLength(1);
      const [report] = ignored as [BackpressureReport];
      expect(report.request).toMatchObject({ correlationId: `ignore-${name}`, method: 'GET', route: '/stream/:mode' });
      expect(report.culprit).toMatchObject({ url: IGNORING_WRITE.file, line: IGNORING_WRITE.line, functionName: 'writeIgnoring' });
      expect(report.bufferedBytes).toBeGreaterThan(Math.max(16 * report.highWaterMark, 1_048_576));
      expect(report.highWaterMark).toBeGreaterThan(0);
      expect(await metric(registry, 'loopsight_backpressure_total')).toContain(
        'loopsight_backpressure_total{kind="ignored",route="/stream/:mode"} 1',
      );
    });

    it("reports nothing for the same route awaiting 'drain', and times its waits per route", async () => {
      const { app, registry, reports } = await start();
      const client = await slowClient(app.url, '/stream/await', { 'x-request-id': `await-${name}` });
      cleanups.push(() => client.destroy());
      // Slowly for 1.5 s (about 2 MB), then as fast as it can, to the end of the 64 MB.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const received = await client.finish();
      expect(received).toBeGreaterThan(TOTAL_BYTES);
      expect(reports).toEqual([]);
      const text = await metric(registry, 'loopsight_drain_wait_seconds');
      const count = /loopsight_drain_wait_seconds_count\{route="\/stream\/:mode"\} (\d+)/.exec(text);
      expect(Number(count?.[1])).toBeGreaterThan(5);
      // The slow part waited: some waits took 25 ms or more.
      const fast = /loopsight_drain_wait_seconds_bucket\{le="0.01",route="\/stream\/:mode"\} (\d+)/.exec(text);
      expect(Number(fast?.[1])).toBeLessThan(Number(count?.[1]));
      expect(app.monitor.counters().backpressure).toMatchObject({
        waiting: 0,
        bufferedBytes: 0,
        reported: { ignored: 0, slowConsumer: 0 },
      });
    });
  });
}

const SIZE = 256 * 1024;

/** 1,000 well-behaved streaming responses at once, to clients that read as fast as they can: no report. */
export function concurrencySuite(name: keyof typeof streamingApps): void {
  // 256 KiB each, four times Node 22's and 16 times Node 20's high-water mark: every response waits for 'drain'.
  it(`${name}: 1,000 concurrent well-behaved streaming responses to fast clients make no report`, { timeout: 120_000 }, async () => {
    const reports: BackpressureReport[] = [];
    const app = await streamingApps[name]({
      loopLag: false,
      promises: false,
      onReport: (r) => {
        if (r.type === 'backpressure') reports.push(r);
      },
    });
    const agent = new Agent({ connections: 1_000 });
    try {
      const sizes = await Promise.all(
        Array.from({ length: 1_000 }, async () => {
          const res = await request(`${app.url}/stream/await?bytes=${SIZE}`, { dispatcher: agent });
          return (await res.body.arrayBuffer()).byteLength;
        }),
      );
      expect(sizes.every((n) => n === SIZE)).toBe(true);
      expect(reports).toEqual([]);
      expect(app.monitor.counters().backpressure).toMatchObject({ waiting: 0, reported: { ignored: 0, slowConsumer: 0 } });
    } finally {
      await agent.close();
      await app.close();
    }
  });
}
