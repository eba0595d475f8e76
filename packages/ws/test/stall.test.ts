import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PromiseReport, StallReport } from '@loopsight/core';
import { loopsight } from '@loopsight/ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { blockTheLoop } from '../../../test-support/blockers.js';
import { until } from '../../../test-support/until.js';
import { type Client, connect, sleep, typeOf } from './helpers.js';

const stalls: StallReport[] = [];
const promises: PromiseReport[] = [];
const server = createServer();
const wss = new WebSocketServer({ server });
const monitor = loopsight(wss, {
  messageName: typeOf,
  promises: { mode: 'full' },
  // Every stall with its stack: a loaded machine adds stalls of its own.
  loopLag: { maxStacksPerMinute: 1000 },
  onReport: () => {},
});
let client: Client;

/** Pretends to write an audit record. */
async function audit(): Promise<void> {
  await sleep(20);
}

beforeAll(async () => {
  monitor.on('stall', (r) => stalls.push(r));
  monitor.on('promise', (r) => promises.push(r));
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const type = typeOf(data);
      if (type === 'report') blockTheLoop(300);
      // A missing `await`: nobody learns whether the audit record was written.
      if (type === 'audit') audit();
      ws.send(JSON.stringify({ type }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  client = await connect(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/live`, { 'x-request-id': 'ws-conn-7' });
  // Let the watchdog's thread come up.
  await sleep(300);
});
afterAll(async () => {
  await client.close();
  wss.close();
  await new Promise((resolve) => server.close(resolve));
  await monitor.stop();
});

it("a message whose handler blocks 300 ms is reported once, with its kind and its connection's id", async () => {
  expect(await client.ask({ type: 'report' })).toEqual({ type: 'report' });
  await until(() => stalls.some((r) => r.request?.correlationId === 'ws-conn-7'), 5_000);
  await sleep(300);
  // A stall from elsewhere (a loaded machine) is real but not ours.
  const ours = stalls.filter((r) => r.request?.correlationId === 'ws-conn-7' || r.stack.some((f) => f.functionName === 'blockTheLoop'));
  expect(ours, JSON.stringify(stalls)).toHaveLength(1);
  const [report] = ours as [StallReport];
  expect(report.durationMs).toBeGreaterThanOrEqual(250);
  expect(report.request).toMatchObject({ correlationId: 'ws-conn-7', method: 'WS', route: 'report' });
  expect(['pause', 'late-pause']).toContain(report.stackSource);
  if (report.stackSource === 'pause') expect(report.culprit, JSON.stringify(report.stack)).toMatchObject({ functionName: 'blockTheLoop' });
});

it("a promise a handler floats is reported with the message's kind and the connection's id", async () => {
  expect(await client.ask({ type: 'audit' })).toEqual({ type: 'audit' });
  await until(() => promises.some((r) => r.kind === 'floating'), 5_000);
  const floating = promises.filter((r) => r.kind === 'floating');
  expect(floating, JSON.stringify(promises)).toHaveLength(1);
  expect(floating[0]).toMatchObject({ request: { correlationId: 'ws-conn-7', method: 'WS', route: 'audit' } });
  expect(floating[0]?.culprit).toMatchObject({ functionName: 'audit' });
});
