import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { correlationHeaders, enablePropagation, getCorrelationId, withCorrelationId } from '@loopsight/context';
import { createMonitor, type Monitor } from '@loopsight/core';
import { createHttpHandler, runInScope } from '@loopsight/core/adapter';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIdEcho } from '../../../test-support/id-echo.js';

// Ids no header could carry: outbound requests from their scope must all go out, without them.
const HOSTILE: [string, string][] = [
  ['a newline', 'a\nb'],
  ['10 KB', 'x'.repeat(10 * 1024)],
  ['non-ASCII', 'ünïcødé-日本'],
  ['empty', ''],
];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let upstream: Awaited<ReturnType<typeof startIdEcho>>;
let target = '';
beforeAll(async () => {
  // A second local server: answers with the id header it received.
  upstream = await startIdEcho();
  target = upstream.url;
});
afterAll(async () => {
  await upstream.close();
});

function httpGet(url: string): Promise<{ status: number; received: unknown }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, received: JSON.parse(body) }));
      })
      .on('error', reject);
  });
}

/** The three clients, from the scope that is current; each result: status and the id the server got. */
async function callOut(): Promise<{ scopeId: string | undefined; results: { status: number; received: unknown }[] }> {
  const scopeId = getCorrelationId();
  const viaHttp = await httpGet(target);
  const f = await fetch(target);
  const viaFetch = { status: f.status, received: await f.json() };
  const u = await undiciRequest(target);
  const viaUndici = { status: u.statusCode, received: await u.body.json() };
  return { scopeId, results: [viaHttp, viaFetch, viaUndici] };
}

function expectClean(hostile: string, { scopeId, results }: Awaited<ReturnType<typeof callOut>>): void {
  expect(scopeId).toMatch(UUID);
  for (const r of results) {
    expect(r.status).toBe(200);
    expect(r.received).not.toBe(hostile);
    expect(r.received).toBe(scopeId);
  }
}

describe('hostile correlation ids', () => {
  let monitor: Monitor;
  beforeAll(() => {
    monitor = createMonitor({ loopLag: false, promises: false, onReport: () => {}, logger: { warn: () => {} } });
    // What an adapter does: attaches outbound propagation to the monitor.
    createHttpHandler(monitor, { route: () => undefined, propagate: enablePropagation });
    monitor.start();
  });
  afterAll(() => monitor.stop());

  it.each(HOSTILE)('monitor.run({ correlationId: %s }): replaced, counted, every outbound request succeeds', async (_name, hostile) => {
    const before = monitor.counters().correlationIdsRejected;
    const out = await monitor.run({ correlationId: hostile }, callOut);
    expectClean(hostile, out);
    const after = monitor.counters().correlationIdsRejected;
    expect(after.invalid + after.too_long).toBe(before.invalid + before.too_long + 1);
  });

  it.each(HOSTILE)('withCorrelationId(%s): replaced, every outbound request succeeds', async (_name, hostile) => {
    expectClean(hostile, await withCorrelationId(hostile, callOut));
    // Inside a job too: the job's own id is not reused for the refused one.
    const out = await monitor.run({ correlationId: 'job-1' }, () => withCorrelationId(hostile, callOut));
    expectClean(hostile, out);
  });

  it.each(HOSTILE)('a generate() that returns %s: replaced, counted, every outbound request succeeds', async (_name, hostile) => {
    const own = createMonitor({ loopLag: false, promises: false, onReport: () => {}, correlation: { generate: () => hostile } });
    createHttpHandler(own, { route: () => undefined, propagate: enablePropagation });
    own.start();
    try {
      expectClean(hostile, await own.run({}, callOut));
      const rejected = own.counters().correlationIdsRejected;
      expect(rejected.invalid + rejected.too_long).toBe(1);
    } finally {
      await own.stop();
    }
  });

  it('a generate() that returns hostile ids for incoming requests: the response echoes a UUID', async () => {
    const own = createMonitor({ loopLag: false, promises: false, onReport: () => {}, correlation: { generate: () => 'a\nb' } });
    const handle = createHttpHandler(own, { route: () => undefined, propagate: enablePropagation });
    own.start();
    const server = http.createServer((req, res) =>
      handle(req, res, undefined, () => callOut().then((out) => res.end(JSON.stringify(out)))),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      expect(res.headers.get('x-request-id')).toMatch(UUID);
      expectClean('a\nb', await res.json());
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await own.stop();
    }
  });

  it('a scope opened by hand with a hostile id (runInScope): outbound requests go out untagged, never fail', async () => {
    for (const [, hostile] of HOSTILE) {
      expect(runInScope({ correlationId: hostile, startedAt: Date.now() }, correlationHeaders)).toEqual({});
      const { results } = await runInScope({ correlationId: hostile, startedAt: Date.now() }, callOut);
      for (const r of results) {
        expect(r.status).toBe(200);
        expect(r.received).toBeNull();
      }
    }
  });
});
