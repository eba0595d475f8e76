import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { StallReport } from '@loopsight/core';
import { frameworks, type TestApp } from '../../../test-support/apps.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const apps: TestApp[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function start(name: string, loopLag: object = {}) {
  const framework = frameworks.find((f) => f.name === name);
  if (!framework) throw new Error(name);
  const reports: StallReport[] = [];
  const app = await framework.start({ loopLag: { ...loopLag }, promises: false, onReport: () => {} });
  apps.push(app);
  app.monitor.on('stall', (r) => reports.push(r));
  // Let the watchdog's worker come up.
  await sleep(300);
  return { app, reports };
}

describe.each(['express 5', 'fastify 5', 'koa 3'])('%s', (name) => {
  it('reports a 350 ms block once, with the named function, its file, the id and the route', async () => {
    const { app, reports } = await start(name);
    const res = await request(`${app.url}/block/350`, { headers: { 'x-request-id': 'block-350' } });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    await sleep(300);
    expect(reports).toHaveLength(1);
    const [report] = reports as [StallReport];
    expect(report.durationMs).toBeGreaterThanOrEqual(280);
    expect(report.durationMs).toBeLessThanOrEqual(1500);
    expect(report.stackSource, JSON.stringify(report)).toBe('pause');
    const top = report.stack.find((f) => f.functionName === 'blockTheLoop');
    expect(top?.url).toMatch(/test-support\/blockers\.ts$/);
    expect(report.request).toMatchObject({ correlationId: 'block-350', route: '/block/:ms', method: 'GET' });
  });
});
