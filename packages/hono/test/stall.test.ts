import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import type { StallReport } from '@loopsight/core';
import { loopsight } from '@loopsight/hono';
import { Hono } from 'hono';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { blockTheLoop } from '../../../test-support/blockers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const reports: StallReport[] = [];
const middleware = loopsight({ promises: false, onReport: () => {} });
let server: Server;
let url: string;

beforeAll(async () => {
  const app = new Hono();
  app.use(middleware);
  // A middleware that blocks before the route runs: Hono has matched the route already.
  app.use('/reports/*', async (_c, next) => {
    blockTheLoop(350);
    await next();
  });
  app.get('/reports/:day', (c) => c.json({ ok: true }));
  server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  middleware.monitor.on('stall', (r) => reports.push(r));
  // Let the watchdog's worker come up.
  await sleep(300);
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await middleware.monitor.stop();
});

it('a 350 ms block in a middleware is one report, with the function, the id and the route it was on its way to', async () => {
  const res = await fetch(`${url}/reports/2026-11-30`, { headers: { 'x-request-id': 'mw-block-1' } });
  expect(res.status).toBe(200);
  await res.json();
  await sleep(300);
  // A stall from elsewhere (a loaded machine) is real but not ours.
  const ours = reports.filter((r) => r.request?.correlationId === 'mw-block-1' || r.stack.some((f) => f.functionName === 'blockTheLoop'));
  expect(ours, JSON.stringify(reports)).toHaveLength(1);
  const [report] = ours as [StallReport];
  expect(report.durationMs).toBeGreaterThanOrEqual(280);
  // A loaded machine can wake the watchdog late; the paused stack still holds the blocking call.
  expect(['pause', 'late-pause']).toContain(report.stackSource);
  expect(report.culprit, JSON.stringify(report.stack)).toMatchObject({ functionName: 'blockTheLoop' });
  expect(report.request).toMatchObject({ correlationId: 'mw-block-1', route: '/reports/:day', method: 'GET' });
});
