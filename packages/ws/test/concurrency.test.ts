import { readFile } from 'node:fs/promises';
import { Agent, createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { getCorrelationId } from '@loopsight/context';
import type { RequestRecord } from '@loopsight/core';
import { loopsight } from '@loopsight/ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { until } from '../../../test-support/until.js';
import { type Client, connect, sleep } from './helpers.js';

const CONNECTIONS = 2_000;
const MESSAGES = 5;

// A downstream service that answers with the id it was sent (propagated by loopsight, not by hand).
const downstream = createServer((req, res) => res.end(String(req.headers['x-request-id'] ?? '')));
// Few sockets to it: 10,000 calls must not take 10,000 file descriptors.
const agent = new Agent({ keepAlive: true, maxSockets: 32 });
const server = createServer();
const wss = new WebSocketServer({ server });
const monitor = loopsight(wss, { loopLag: false, promises: false, onReport: () => {} });
const records: RequestRecord[] = [];
const sockets: WeakRef<WebSocket>[] = [];
let downstreamUrl = '';
let url = '';

function call(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`${downstreamUrl}${path}`, { agent }, (res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

beforeAll(async () => {
  await new Promise<void>((resolve) => downstream.listen(0, '127.0.0.1', resolve));
  downstreamUrl = `http://127.0.0.1:${(downstream.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/load`;
  monitor.on('request', (r) => records.push(r));
  wss.on('connection', (ws) => {
    sockets.push(new WeakRef(ws));
    ws.on('message', async (data) => {
      const sent = JSON.parse(String(data)) as { id: string; n: number };
      const seen = [getCorrelationId()];
      await sleep(Math.random() * 20);
      seen.push(getCorrelationId());
      await readFile(new URL(import.meta.url));
      seen.push(getCorrelationId());
      const downstreamSaw = await call(`/check/${sent.n}`);
      seen.push(getCorrelationId());
      ws.send(JSON.stringify({ n: sent.n, seen, downstreamSaw }));
    });
  });
});
afterAll(async () => {
  wss.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  agent.destroy();
  downstream.closeAllConnections();
  await new Promise((resolve) => downstream.close(resolve));
  await monitor.stop();
});

it(`${CONNECTIONS} connections × ${MESSAGES} messages awaiting timers, fs and a downstream call: every handler and every downstream call sees its own connection's id; closing them all leaves nothing tracked`, {
  timeout: 180_000,
}, async () => {
  const clients: Client[] = [];
  // Connected in batches: a loaded machine's backlog is not what this test is about.
  for (let i = 0; i < CONNECTIONS; i += 200) {
    clients.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(200, CONNECTIONS - i) }, (_, j) => connect(url, { 'x-request-id': `conn-${i + j}` })),
      )),
    );
  }
  expect(monitor.counters().connections?.open).toBe(CONNECTIONS);
  let mismatches = 0;
  const problems: string[] = [];
  await Promise.all(
    clients.map(async (client, i) => {
      const id = `conn-${i}`;
      expect(client.handshake['x-request-id']).toBe(id);
      const answers = await Promise.all(Array.from({ length: MESSAGES }, (_, n) => client.ask({ id, n })));
      for (const answer of answers) {
        const seen = answer.seen as string[];
        if (seen.some((s) => s !== id) || answer.downstreamSaw !== id) {
          mismatches++;
          if (problems.length < 5) problems.push(`${id}: ${JSON.stringify(answer)}`);
        }
      }
    }),
  );
  expect(mismatches, problems.join('\n')).toBe(0);
  await until(() => records.length === CONNECTIONS * MESSAGES, 10_000);
  expect(records).toHaveLength(CONNECTIONS * MESSAGES);
  expect(records.every((r) => r.method === 'WS' && r.route === '/load' && !r.aborted)).toBe(true);
  const perId = new Map<string, number>();
  for (const r of records) perId.set(r.correlationId, (perId.get(r.correlationId) ?? 0) + 1);
  expect(perId.size).toBe(CONNECTIONS);
  expect([...perId.values()].every((n) => n === MESSAGES)).toBe(true);

  // Closing them all leaves nothing tracked: nothing in flight, no open count, and the sockets are
  // collectable (loopsight keeps no map of them).
  await Promise.all(clients.map((c) => c.close()));
  clients.length = 0;
  await until(() => monitor.counters().connections?.open === 0, 10_000);
  expect(monitor.counters().connections).toEqual({ opened: CONNECTIONS, closed: CONNECTIONS, open: 0 });
  expect(monitor.inflight()).toEqual([]);
  expect(wss.clients.size).toBe(0);
  records.length = 0;
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let alive = CONNECTIONS;
  for (let round = 0; round < 10 && alive > 0; round++) {
    gc();
    await sleep(50);
    alive = sockets.filter((ref) => ref.deref() !== undefined).length;
  }
  expect(alive).toBe(0);
});
