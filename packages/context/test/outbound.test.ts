import http, { type IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameworks } from '../../../test-support/apps.js';
import { startIdEcho } from '../../../test-support/id-echo.js';

// undici 5 with an Agent of its own: undici's global dispatcher is shared across versions, so
// without one, undici 7's Agent would build the request.
const undici5 = createRequire(import.meta.url)('undici5') as typeof import('undici');
const undici5Agent = new undici5.Agent();
const undici5Request = (url: string, options: { headers?: Record<string, string> } = {}) =>
  undici5.request(url, { ...options, dispatcher: undici5Agent });
const RAW_ARRAY_TAGGED = Number(process.versions.node.split('.')[0]) < 23;

let upstream: Awaited<ReturnType<typeof startIdEcho>>;
let target = '';

beforeAll(async () => {
  // A second local server: answers with the id header it received.
  upstream = await startIdEcho();
  target = upstream.url;
});
afterAll(async () => {
  await undici5Agent.close();
  await upstream.close();
});

function httpCall(fn: typeof http.request, ...args: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = (fn as (...a: unknown[]) => http.ClientRequest)(...args, (res: http.IncomingMessage) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every way a handler calls out, each answering with the id the upstream saw. */
async function callEveryWay(url: string): Promise<Record<string, unknown>> {
  const { hostname, port } = new URL(url);
  const headers: IncomingHttpHeaders = { accept: 'application/json' };
  return {
    fetch: await (await fetch(url)).json(),
    undici: await (await undiciRequest(url)).body.json(),
    // undici 5 keeps a request's headers as one string rather than an array.
    undici5: await (await undici5Request(url)).body.json(),
    undici5CallerSet: await (await undici5Request(url, { headers: { 'X-Request-ID': 'caller-set' } })).body.json(),
    httpRequestOptions: await httpCall(http.request, { hostname, port, path: '/', headers }),
    httpRequestUrl: await httpCall(http.request, url),
    httpGetUrlAndOptions: await httpCall(http.get, url, { headers }),
    httpArrayHeaders: await httpCall(http.request, {
      hostname,
      port,
      path: '/',
      headers: ['host', `${hostname}:${port}`, 'accept', 'application/json'],
    }),
    fetchCallerSet: await (await fetch(url, { headers: { 'X-Request-Id': 'caller-set' } })).json(),
    undiciCallerSet: await (await undiciRequest(url, { headers: { 'x-request-id': 'caller-set' } })).body.json(),
    httpCallerSet: await httpCall(http.request, { hostname, port, path: '/', headers: { 'X-REQUEST-ID': 'caller-set' } }),
  };
}

describe('outbound propagation', () => {
  for (const framework of frameworks) {
    it(`carries the id on fetch, undici and http.request from a ${framework.name} handler, and keeps a header the caller set`, async () => {
      const app = await framework.start(undefined, { outbound: callEveryWay, target });
      try {
        const res = await fetch(`${app.url}/outbound`, { headers: { 'x-request-id': 'out-1' } });
        expect(await res.json()).toEqual({
          fetch: 'out-1',
          undici: 'out-1',
          undici5: 'out-1',
          undici5CallerSet: 'caller-set',
          httpRequestOptions: 'out-1',
          httpRequestUrl: 'out-1',
          httpGetUrlAndOptions: 'out-1',
          // Node 23+ serializes raw-array headers before http.client.request.created fires: documented in docs/context.md.
          httpArrayHeaders: RAW_ARRAY_TAGGED ? 'out-1' : null,
          fetchCallerSet: 'caller-set',
          undiciCallerSet: 'caller-set',
          httpCallerSet: 'caller-set',
        });
      } finally {
        await app.close();
      }
    });
  }

  it('adds nothing outside a scope, nor with correlation.propagate: false', async () => {
    const app = await frameworks[1]?.start(undefined, { outbound: callEveryWay, target });
    if (!app) throw new Error('no framework');
    expect(await (await fetch(target)).json()).toBeNull();
    await app.close();
    const stopped = await frameworks[1]?.start({ correlation: { propagate: false } }, { outbound: callEveryWay, target });
    if (!stopped) throw new Error('no framework');
    try {
      const res = await fetch(`${stopped.url}/outbound`, { headers: { 'x-request-id': 'out-2' } });
      const body = (await res.json()) as Record<string, unknown>;
      expect(body.fetch).toBeNull();
      expect(body.httpRequestOptions).toBeNull();
    } finally {
      await stopped.close();
    }
  });
});
