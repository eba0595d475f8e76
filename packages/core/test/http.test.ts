import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMonitor, type RequestRecord } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { request } from 'undici';
import { expect, it } from 'vitest';
import { HttpScope, trackRequest } from '../src/request.js';

it('contains a throwing route resolver: the request is served, its route is unknown, the failure said once and counted', async () => {
  const warnings: string[] = [];
  const monitor = createMonitor({ loopLag: false, promises: false, onReport: () => {}, logger: { warn: (m) => warnings.push(m) } });
  monitor.start();
  const records: RequestRecord[] = [];
  monitor.on('request', (r) => records.push(r));
  let calls = 0;
  const resolver = () => {
    calls++;
    throw new Error('router exploded');
  };
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', onUncaught);
  const server = http.createServer((req, res) =>
    trackRequest(new HttpScope(internals(monitor), `id-${calls}`, req, resolver, req), req, res, () => res.end('ok')),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    for (let i = 0; i < 3; i++) {
      const res = await request(url);
      expect(await res.body.text()).toBe('ok');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    process.off('uncaughtException', onUncaught);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await monitor.stop();
  }
  expect(uncaught).toEqual([]);
  expect(records).toHaveLength(3);
  for (const r of records) expect(r.route).toBeUndefined();
  // Asked once per request, not again on every read of the route.
  expect(calls).toBe(3);
  expect(monitor.counters().internalErrors).toBe(3);
  expect(warnings).toEqual([expect.stringContaining('the route resolver threw: router exploded')]);
});
