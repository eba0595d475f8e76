import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BackpressureReport } from '@loopsight/core';
import { prometheusExporter } from '@loopsight/prometheus';
import { loopsight } from '@loopsight/ws';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { until } from '../../../test-support/until.js';
import { type Client, connect, typeOf } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** A ws server whose 'flood' message sends `count` messages of 1 MB, as fast as send() takes them. */
async function start(slowConsumerMs = 500) {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  const registry = new Registry();
  const reports: BackpressureReport[] = [];
  const monitor = loopsight(wss, {
    loopLag: false,
    promises: false,
    messageName: typeOf,
    backpressure: { slowConsumerMs },
    exporters: [prometheusExporter({ registry })],
    onReport: (r) => {
      if (r.type === 'backpressure') reports.push(r);
    },
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const { count } = JSON.parse(String(data)) as { count: number };
      const megabyte = Buffer.alloc(1024 * 1024, 97);
      for (let i = 0; i < count; i++) ws.send(megabyte);
    });
  });
  const host = await listen(server);
  const clients: Client[] = [];
  cleanups.push(async () => {
    for (const c of clients) c.ws.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await monitor.stop();
  });
  return {
    monitor,
    registry,
    reports,
    async connect(headers: Record<string, string> = {}) {
      const client = await connect(`ws://${host}/feed`, headers);
      clients.push(client);
      return client;
    },
  };
}

describe('@loopsight/ws: backpressure', () => {
  it('reports a connection whose client stopped reading while the server sent 20 MB: one slow consumer, with its id and message kind', async () => {
    const app = await start();
    const client = await app.connect({ 'x-request-id': 'stuck-reader' });
    // The client stops reading: its socket is paused, the kernel buffers fill, the server's buffer grows.
    (client.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    client.ws.send(JSON.stringify({ type: 'flood', count: 20 }));
    expect(await until(() => app.reports.some((r) => r.kind === 'slow-consumer'), 10_000)).toBe(true);
    // Still stuck a while later: reported once, not once per tick.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const slow = app.reports.filter((r) => r.kind === 'slow-consumer');
    expect(slow).toHaveLength(1);
    const [report] = slow as [BackpressureReport];
    expect(report.request).toMatchObject({ correlationId: 'stuck-reader', method: 'WS', route: 'flood' });
    expect(report.durationMs).toBeGreaterThanOrEqual(500);
    expect(report.bufferedBytes).toBeGreaterThan(1_048_576);
    expect(app.monitor.counters().backpressure?.bufferedBytes).toBeGreaterThan(1_048_576);
    const text = await app.registry.getSingleMetricAsString('loopsight_backpressure_total');
    expect(text).toContain('loopsight_backpressure_total{kind="slow-consumer",route="flood"} 1');
    expect(await app.registry.getSingleMetricAsString('loopsight_backpressure_buffered_bytes')).toMatch(
      /loopsight_backpressure_buffered_bytes \d{7,}/,
    );
  });

  it('reports nothing for a client that reads, and times the waits for drain by message kind', async () => {
    // A loaded machine can take seconds to move 20 MB: slow consumers are those minutes behind here.
    const app = await start(600_000);
    const client = await app.connect();
    let received = 0;
    client.ws.on('message', (data: Buffer) => {
      received += data.length;
    });
    client.ws.send(JSON.stringify({ type: 'flood', count: 20 }));
    expect(await until(() => received >= 20 * 1024 * 1024, 10_000)).toBe(true);
    // The flood ignores backpressure (20 sends in one go): that is reported, and it is no slow consumer.
    expect(app.reports.filter((r) => r.kind === 'slow-consumer')).toEqual([]);
    expect(await until(() => app.monitor.counters().backpressure?.waiting === 0)).toBe(true);
    expect(app.monitor.counters().backpressure).toMatchObject({ waiting: 0, bufferedBytes: 0 });
    const text = await app.registry.getSingleMetricAsString('loopsight_drain_wait_seconds');
    expect(Number(/loopsight_drain_wait_seconds_count\{route="flood"\} (\d+)/.exec(text)?.[1])).toBeGreaterThan(0);
  });
});
