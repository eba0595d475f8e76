import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMonitor } from '@loopsight/core';
import { prometheusExporter } from '@loopsight/prometheus';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { expect, it } from 'vitest';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it('the outbound queue-wait histogram is registered with the first fetch() wait, by origin, and goes on stop()', async () => {
  const slow = createServer((_req, res) => setTimeout(() => res.end('ok'), 100));
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const registry = new Registry();
  const exporter = prometheusExporter({ registry });
  const monitor = createMonitor({ loopLag: false, promises: false, exporters: [exporter] });
  monitor.start();
  const pool = new Pool(origin, { connections: 2 });
  try {
    // A service that makes no fetch calls has no outbound series.
    expect(exporter.metricNames).not.toContain('loopsight_outbound_queue_wait_seconds');
    await Promise.all(
      Array.from({ length: 6 }, () => fetch(`${origin}/q?token=secret`, { dispatcher: pool } as RequestInit).then((r) => r.text())),
    );
    let text = '';
    for (let i = 0; i < 100 && !text.includes('loopsight_outbound_queue_wait_seconds_count'); i++) {
      await sleep(20);
      text = await registry.metrics();
    }
    expect(exporter.metricNames).toContain('loopsight_outbound_queue_wait_seconds');
    expect(text).toContain('# TYPE loopsight_outbound_queue_wait_seconds histogram');
    expect(text).toContain(`loopsight_outbound_queue_wait_seconds_count{origin="${origin}"} 6`);
    // Three rounds of 100 ms behind 2 connections: the last two waited about 200 ms.
    expect(text).toContain(`loopsight_outbound_queue_wait_seconds_bucket{le="30",origin="${origin}"} 6`);
    const under100ms = text.match(/loopsight_outbound_queue_wait_seconds_bucket\{le="0\.1",origin="[^"]+"\} (\d+)/)?.[1];
    expect(Number(under100ms)).toBeLessThanOrEqual(4);
    // Never a path or a query string.
    expect(text).not.toContain('/q');
    expect(text).not.toContain('secret');
  } finally {
    await pool.close();
    await monitor.stop();
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
  }
  expect(await registry.metrics()).not.toContain('loopsight_outbound_queue_wait_seconds');
});
