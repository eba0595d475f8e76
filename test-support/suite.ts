import { connect } from 'node:net';
import { getCorrelationId } from '@loopsight/context';
import type { RequestRecord } from '@loopsight/core';
import { createMonitor } from '@loopsight/core';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Framework, TestApp } from './apps.js';
import { until } from './until.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * Sends raw bytes, so that values Node's own client refuses to send can be tried. A body is sent
 * 50 ms after the headers, so that it reaches the server from the socket, as large uploads do.
 */
function rawRequest(
  url: string,
  head: string,
  body?: string,
): Promise<{ status: number; headers: Record<string, string>; text: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      let payload = text.slice(split + 4);
      // Undo chunked transfer coding, enough for one small JSON body.
      if (headers['transfer-encoding'] === 'chunked') payload = payload.split('\r\n')[1] ?? '';
      resolve({ status: Number(statusLine.split(' ')[1]), headers, text, body: payload });
    });
    socket.write(Buffer.from(`${head}Connection: close\r\n\r\n`, 'latin1'));
    if (body !== undefined) setTimeout(() => socket.write(body), 50);
  });
}

function nextRecord(app: TestApp, path: string): Promise<RequestRecord> {
  return new Promise((resolve) => {
    const listener = (record: RequestRecord) => {
      if (record.route === undefined && path !== '*') return;
      app.monitor.off('request', listener);
      resolve(record);
    };
    app.monitor.on('request', listener);
  });
}

/** The behaviour every adapter must show, on real servers with real HTTP. */
export function adapterSuite(framework: Framework): void {
  describe(framework.name, () => {
    let app: TestApp;
    let agent: Agent;
    beforeAll(async () => {
      app = await framework.start();
      agent = new Agent({ connections: 256 });
    });
    afterAll(async () => {
      await agent.close();
      await app.close();
    });

    it('keeps 1,200 concurrent requests apart across timers, fs, setImmediate, an EventEmitter and Promise.all', async () => {
      const ids = Array.from({ length: 1200 }, (_, i) => `req-${i}-${Math.random().toString(36).slice(2)}`);
      const results = await Promise.all(
        ids.map(async (id, i) => {
          const res = await request(`${app.url}/hops/${i}`, { dispatcher: agent, headers: { 'x-request-id': id } });
          const body = (await res.body.json()) as { id: string; seen: string[] };
          return { id, status: res.statusCode, echoed: res.headers['x-request-id'], body };
        }),
      );
      const mismatches = results.filter(
        (r) => r.status !== 200 || r.echoed !== r.id || r.body.id !== r.id || r.body.seen.some((s) => s !== r.id),
      );
      expect(mismatches).toEqual([]);
      expect(results[0]?.body.seen.length).toBeGreaterThanOrEqual(8);
      expect(app.monitor.inflight()).toEqual([]);
    });

    it("keeps the scope through the framework's body parser, when the body arrives after the headers", async () => {
      const payload = JSON.stringify({ hello: 'world' });
      const head = `POST /json HTTP/1.1\r\nHost: test\r\nx-request-id: body-1\r\ncontent-type: application/json\r\ncontent-length: ${payload.length}\r\n`;
      const res = await rawRequest(app.url, head, payload);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ id: 'body-1', body: { hello: 'world' } });
    });

    it("with bindEmitters, keeps the scope in the request's own 'data' and 'end' listeners", async () => {
      const bound = await framework.start({ bindEmitters: true });
      try {
        const head = 'POST /raw HTTP/1.1\r\nHost: test\r\nx-request-id: raw-1\r\ncontent-type: application/x-raw\r\ncontent-length: 5\r\n';
        const res = await rawRequest(bound.url, head, 'hello');
        expect(res.status).toBe(200);
        expect(JSON.parse(res.body)).toEqual({ text: 'hello', idAtEnd: 'raw-1' });
      } finally {
        await bound.close();
      }
    });

    it("runs 'request' listeners inside the request's scope", async () => {
      const seen = new Promise<[string, string | undefined]>((resolve) => {
        const listener = (record: RequestRecord) => {
          app.monitor.off('request', listener);
          resolve([record.correlationId, getCorrelationId()]);
        };
        app.monitor.on('request', listener);
      });
      const res = await request(`${app.url}/users/9`, { dispatcher: agent, headers: { 'x-request-id': 'listener-1' } });
      await res.body.dump();
      expect(await seen).toEqual(['listener-1', 'listener-1']);
    });

    it("records the route template, never the raw path, in the 'request' event", async () => {
      const seen = nextRecord(app, '/users/:id');
      const res = await request(`${app.url}/users/4711`, { dispatcher: agent, headers: { 'x-request-id': 'route-1' } });
      await res.body.dump();
      const record = await seen;
      expect(record).toMatchObject({
        type: 'request',
        correlationId: 'route-1',
        method: 'GET',
        route: '/users/:id',
        status: 200,
        aborted: false,
      });
      expect(record.durationMs).toBeGreaterThanOrEqual(0);
    });

    it('labels many distinct paths of one route with its template, and a request no route matched with none', async () => {
      const records: RequestRecord[] = [];
      const listener = (record: RequestRecord) => records.push(record);
      app.monitor.on('request', listener);
      try {
        for (let i = 0; i < 50; i++) await (await request(`${app.url}/users/u-${i}`, { dispatcher: agent })).body.dump();
        const missing = await request(`${app.url}/nowhere/4711`, { dispatcher: agent });
        await missing.body.dump();
        expect(missing.statusCode).toBe(404);
        await new Promise((resolve) => setTimeout(resolve, 50));
      } finally {
        app.monitor.off('request', listener);
      }
      expect(records).toHaveLength(51);
      expect(new Set(records.slice(0, 50).map((r) => r.route))).toEqual(new Set(['/users/:id']));
      // No template known: exporters label it __unrouted__; the path is never used.
      expect(records[50]?.route).toBeUndefined();
    });

    it('generates a fresh id when none comes in, and falls back to the traceparent trace id', async () => {
      const plain = await request(`${app.url}/users/1`, { dispatcher: agent });
      const plainBody = (await plain.body.json()) as { id: string };
      expect(plain.headers['x-request-id']).toMatch(UUID);
      expect(plainBody.id).toBe(plain.headers['x-request-id']);

      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const traced = await request(`${app.url}/users/1`, {
        dispatcher: agent,
        headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      });
      expect(((await traced.body.json()) as { id: string }).id).toBe(traceId);

      const correlated = await request(`${app.url}/users/1`, { dispatcher: agent, headers: { 'x-correlation-id': 'corr-7' } });
      expect(((await correlated.body.json()) as { id: string }).id).toBe('corr-7');
    });

    const hostile: [string, string][] = [
      ['10 KB', 'x'.repeat(10 * 1024)],
      ['<script>', '<script>alert(1)</script>'],
      ['spaces', 'has some spaces'],
      ['non-ASCII bytes', 'caf\u00e9-\u00ff\u00fe'],
      ['quotes', `"dq"-'sq'`],
      ['empty', ''],
    ];
    for (const [label, value] of hostile) {
      it(`replaces a hostile id (${label}) with a fresh one and never reflects it`, async () => {
        const before = app.monitor.counters().correlationIdsRejected;
        const res = await rawRequest(app.url, `GET /users/1 HTTP/1.1\r\nHost: test\r\nx-request-id: ${value}\r\n`);
        expect(res.status).toBe(200);
        expect(res.headers['x-request-id']).toMatch(UUID);
        expect(res.text).toContain(`"id":"${res.headers['x-request-id']}"`);
        if (value.trim() !== '') expect(res.text).not.toContain(value.trim());
        const after = app.monitor.counters().correlationIdsRejected;
        const total = (c: typeof after) => c.invalid + c.too_long + c.duplicate;
        expect(total(after)).toBe(total(before) + 1);
      });
    }

    it('replaces an id sent on two header lines, reflecting neither', async () => {
      const res = await rawRequest(
        app.url,
        'GET /users/1 HTTP/1.1\r\nHost: test\r\nx-request-id: first-9f3e\r\nx-request-id: second-7c1a\r\n',
      );
      expect(res.status).toBe(200);
      expect(res.headers['x-request-id']).toMatch(UUID);
      expect(res.text).not.toContain('first-9f3e');
      expect(res.text).not.toContain('second-7c1a');
    });

    it('shows a running request in flight and ends an aborted one', async () => {
      const ended = nextRecord(app, '/late');
      const controller = new AbortController();
      const pending = request(`${app.url}/late`, { headers: { 'x-request-id': 'abort-1' }, signal: controller.signal }).catch(
        (e: Error) => e,
      );
      // In flight once the handler runs (its 300 ms timer), however late a loaded machine gets there.
      const inflight = () => app.monitor.inflight().map((s) => s.correlationId);
      await until(() => inflight().includes('abort-1'), 5_000, 5);
      expect(inflight()).toContain('abort-1');
      controller.abort();
      await pending;
      const record = await ended;
      expect(record).toMatchObject({ correlationId: 'abort-1', route: '/late', aborted: true });
      expect(app.monitor.inflight()).toEqual([]);
    });

    it('shares one monitor between two apps', async () => {
      const monitor = createMonitor();
      monitor.start();
      const one = await framework.start({ monitor });
      const two = await framework.start({ monitor });
      try {
        const ids: string[] = [];
        monitor.on('request', (r) => ids.push(r.correlationId));
        for (const [target, id] of [
          [one, 'shared-1'],
          [two, 'shared-2'],
        ] as const) {
          const res = await request(`${target.url}/users/1`, { headers: { 'x-request-id': id } });
          await res.body.dump();
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(ids).toEqual(['shared-1', 'shared-2']);
        expect(one.monitor).toBe(monitor);
        expect(two.monitor).toBe(monitor);
      } finally {
        await one.close();
        await two.close();
        expect(monitor.running).toBe(true);
        await monitor.stop();
      }
    });

    it('refuses invalid options with a TypeError naming the option', async () => {
      await expect(framework.start({ loopLag: { stallThresholdMs: -5 } })).rejects.toThrow(
        expect.objectContaining({
          name: 'TypeError',
          code: 'ERR_LOOPSIGHT_INVALID_OPTION',
          path: 'loopLag.stallThresholdMs',
          message: 'loopsight: options.loopLag.stallThresholdMs must be a positive number up to 3600000 (got -5)',
        }),
      );
      await expect(framework.start({ loopLag: { stallTresholdMs: 200 } } as never)).rejects.toThrow(
        expect.objectContaining({
          code: 'ERR_LOOPSIGHT_UNKNOWN_OPTION',
          message: expect.stringMatching(/did you mean 'stallThresholdMs'\?$/),
        }),
      );
      await expect(framework.start({ monitor: createMonitor(), maxInflight: 5 })).rejects.toThrow(/options.monitor cannot be combined/);
    });
  });
}
