import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PromiseReport } from '@loopsight/core';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameworks, type PromiseApp } from './apps.js';
import { type Context, correct, floats, leaks, many } from './scenarios.js';

const SCENARIOS_FILE = 'scenarios.ts';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function run(ctx: Context) {
  return (name: string): Promise<unknown> => {
    if (name === 'floats') return floats();
    if (name === 'leaks') return leaks();
    if (name === 'many') return many();
    const scenario = correct[name];
    if (scenario === undefined) throw new Error(`no scenario ${name}`);
    return scenario(ctx);
  };
}

let upstream: Server;
const ctx: Context = { upstream: '' };

beforeAll(async () => {
  upstream = createServer((_req, res) => res.end(JSON.stringify({ ok: true })));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  ctx.upstream = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});

for (const framework of frameworks) {
  describe(`${framework.name}, full mode`, () => {
    let app: PromiseApp;
    let agent: Agent;
    const reports: PromiseReport[] = [];
    beforeAll(async () => {
      app = await framework.start({ loopLag: false, promises: { mode: 'full', leakAfterMs: 400 }, onReport: () => {} }, run(ctx));
      app.monitor.on('promise', (r) => reports.push(r));
      agent = new Agent();
    });
    afterAll(async () => {
      await agent.close();
      await app.close();
    });

    async function get(name: string, id: string): Promise<void> {
      const res = await request(`${app.url}/run/${encodeURIComponent(name)}`, { dispatcher: agent, headers: { 'x-request-id': id } });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
    }

    it('reports nothing for correct code, nor for the framework itself', async () => {
      reports.length = 0;
      for (const [i, name] of Object.keys(correct).entries()) await get(name, `correct-${i}`);
      // Past leakAfterMs and a sweep, so that late decisions (leaks, late settles) are in too.
      await sleep(1_000);
      expect(reports.map((r) => ({ kind: r.kind, id: r.request?.correlationId, at: r.stack.slice(0, 2) }))).toEqual([]);
    });

    it('reports an async function called without await: one floating report, at the calling file, with the request id', async () => {
      reports.length = 0;
      await get('floats', 'float-1');
      await sleep(1_000);
      expect(reports).toHaveLength(1);
      const [report] = reports;
      expect(report).toMatchObject({ type: 'promise', kind: 'floating', request: { correlationId: 'float-1' } });
      expect(report?.culprit).toMatchObject({ functionName: 'audit' });
      expect(report?.stack[1]).toMatchObject({ functionName: 'floats' });
      expect(report?.stack[1]?.url).toContain(SCENARIOS_FILE);
      expect(report?.stack.every((f) => !f.url.includes('node_modules') && !f.url.startsWith('node:'))).toBe(true);
    });

    it('reports a pending promise that outlives its request as leaked', async () => {
      reports.length = 0;
      await get('leaks', 'leak-1');
      await sleep(1_200);
      expect(reports.map((r) => [r.kind, r.request?.correlationId])).toEqual([['leaked', 'leak-1']]);
      expect(reports[0]?.stack[1]?.url).toContain(SCENARIOS_FILE);
      expect(reports[0]?.ageMs).toBeGreaterThanOrEqual(400);
    });
  });
}
