import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { getCorrelationId } from '@loopsight/context';
import type { AdapterOptions, RequestRecord } from '@loopsight/core';
import { loopsight } from '@loopsight/hono';
import { Hono, type MiddlewareHandler } from 'hono';
import { requestId } from 'hono/request-id';
import { afterEach, describe, expect, it } from 'vitest';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** Serves `app` (built with `middleware` mounted) on an ephemeral port; returns its URL and the records seen. */
async function serve(app: Hono, middleware: ReturnType<typeof loopsight>) {
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const records: RequestRecord[] = [];
  middleware.monitor.on('request', (r) => records.push(r));
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await middleware.monitor.stop();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  /** GETs `path` and returns the route its 'request' record carried. */
  const routeOf = async (path: string, init?: RequestInit) => {
    const before = records.length;
    const res = await fetch(url + path, init);
    await res.arrayBuffer();
    for (let i = 0; i < 50 && records.length === before; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    return { status: res.status, route: records[before]?.route, res };
  };
  return { url, routeOf, records };
}

const quiet: AdapterOptions = { loopLag: false, promises: false, onReport: () => {} };

describe('route templates from the route Hono matched', () => {
  it('nested app.route() mounts, basePath(), wildcards and regexp parameters', async () => {
    const middleware = loopsight(quiet);
    const app = new Hono();
    app.use(middleware);
    const members = new Hono();
    members.get('/:member', (c) => c.text('member'));
    const orgs = new Hono();
    orgs.get('/:org', (c) => c.text('org'));
    orgs.route('/:org/members', members);
    app.route('/orgs', orgs);
    const v2 = new Hono().basePath('/api/v2');
    v2.get('/items/:id{[0-9]+}', (c) => c.text('item'));
    v2.get('/files/*', (c) => c.text('file'));
    app.route('/', v2);
    app.get('/', (c) => c.text('home'));
    const { routeOf } = await serve(app, middleware);

    expect(await routeOf('/orgs/acme')).toMatchObject({ status: 200, route: '/orgs/:org' });
    expect(await routeOf('/orgs/acme/members/ann')).toMatchObject({ status: 200, route: '/orgs/:org/members/:member' });
    expect(await routeOf('/api/v2/items/4711')).toMatchObject({ status: 200, route: '/api/v2/items/:id{[0-9]+}' });
    expect(await routeOf('/api/v2/files/a/b/c.txt')).toMatchObject({ status: 200, route: '/api/v2/files/*' });
    expect(await routeOf('/')).toMatchObject({ status: 200, route: '/' });
    expect(await routeOf('/orgs/acme', { method: 'HEAD' })).toMatchObject({ status: 200, route: '/orgs/:org' });
  });

  it('the route the request matched, also when a middleware answers before it; none for notFound behind other middleware', async () => {
    const middleware = loopsight(quiet);
    const app = new Hono();
    app.use(middleware);
    app.use(async (c, next) => {
      await next();
      c.header('x-after', '1');
    });
    const auth: MiddlewareHandler = async (c, next) => {
      if (c.req.header('authorization') === undefined) return c.text('no', 401);
      await next();
    };
    app.use('/admin/*', auth);
    app.get('/admin/users/:id', (c) => c.text('user'));
    const { routeOf } = await serve(app, middleware);

    expect(await routeOf('/nowhere/4711')).toEqual(expect.objectContaining({ status: 404, route: undefined }));
    expect(await routeOf('/admin/users/7')).toMatchObject({ status: 401, route: '/admin/users/:id' });
    expect(await routeOf('/admin/nothing-here')).toEqual(expect.objectContaining({ status: 401, route: undefined }));
    expect(await routeOf('/admin/users/7', { headers: { authorization: 'x' } })).toMatchObject({ status: 200, route: '/admin/users/:id' });
  });

  it('an error thrown by the handler still ends the scope, with the template and the status onError gave', async () => {
    const middleware = loopsight(quiet);
    const app = new Hono();
    app.use(middleware);
    app.get('/boom/:n', () => {
      throw new Error('boom');
    });
    app.onError((_error, c) => c.text('sorry', 503));
    const { routeOf, records } = await serve(app, middleware);
    expect(await routeOf('/boom/1')).toMatchObject({ status: 503, route: '/boom/:n' });
    expect(records[0]).toMatchObject({ status: 503, aborted: false });
    expect(middleware.monitor.inflight()).toEqual([]);
  });
});

describe("Hono's requestId middleware", () => {
  function app(order: 'requestId first' | 'loopsight only', generator?: () => string) {
    const middleware = loopsight(quiet);
    const hono = new Hono();
    if (order === 'requestId first') hono.use(requestId(generator ? { generator } : {}));
    hono.use(middleware);
    hono.get('/id', (c) => c.json({ requestId: c.get('requestId'), correlationId: getCorrelationId() }));
    hono.get('/raw', () => new Response(JSON.stringify({ correlationId: getCorrelationId() })));
    return { hono, middleware };
  }

  it('when it ran first, loopsight adopts its id: one id in c.get, getCorrelationId() and the echoed header', async () => {
    const { hono, middleware } = app('requestId first');
    const { url } = await serve(hono, middleware);
    const generated = await fetch(`${url}/id`);
    const body = (await generated.json()) as { requestId: string; correlationId: string };
    expect(body.correlationId).toMatch(UUID);
    expect(body.requestId).toBe(body.correlationId);
    expect(generated.headers.get('x-request-id')).toBe(body.correlationId);

    const sent = await fetch(`${url}/id`, { headers: { 'x-request-id': 'checkout-7f3a' } });
    expect(await sent.json()).toEqual({ requestId: 'checkout-7f3a', correlationId: 'checkout-7f3a' });
    expect(sent.headers.get('x-request-id')).toBe('checkout-7f3a');
  });

  it('adopts the id its own generator made', async () => {
    let n = 0;
    const { hono, middleware } = app('requestId first', () => `gen-${++n}`);
    const { url } = await serve(hono, middleware);
    const res = await fetch(`${url}/id`);
    expect(await res.json()).toEqual({ requestId: 'gen-1', correlationId: 'gen-1' });
    expect(res.headers.get('x-request-id')).toBe('gen-1');
  });

  it("when its id fails loopsight's checks, loopsight's fresh id replaces it everywhere, and it is counted once", async () => {
    const { hono, middleware } = app('requestId first');
    const { url } = await serve(hono, middleware);
    // requestId() accepts up to 255 characters of [A-Za-z0-9_=-]; loopsight 128 of [A-Za-z0-9._:-].
    for (const hostile of ['a'.repeat(200), 'has=equals']) {
      const res = await fetch(`${url}/id`, { headers: { 'x-request-id': hostile } });
      const body = (await res.json()) as { requestId: string; correlationId: string };
      expect(body.correlationId).toMatch(UUID);
      expect(body.requestId).toBe(body.correlationId);
      expect(res.headers.get('x-request-id')).toBe(body.correlationId);
    }
    const { correlationIdsRejected } = middleware.monitor.counters();
    expect(correlationIdsRejected.invalid + correlationIdsRejected.too_long).toBe(2);
  });

  it('without it, c.get("requestId") is the correlation id, and the echo survives a handler that builds its own Response', async () => {
    const { hono, middleware } = app('loopsight only');
    const { url } = await serve(hono, middleware);
    const res = await fetch(`${url}/id`, { headers: { 'x-request-id': 'order-42' } });
    expect(await res.json()).toEqual({ requestId: 'order-42', correlationId: 'order-42' });
    const raw = await fetch(`${url}/raw`, { headers: { 'x-request-id': 'order-43' } });
    expect(raw.headers.get('x-request-id')).toBe('order-43');
    expect(await raw.json()).toEqual({ correlationId: 'order-43' });
  });
});

describe('not served by @hono/node-server', () => {
  it('serves requests untracked and says so once, never failing them (app.request, as on Bun, Deno or Workers)', async () => {
    const warnings: string[] = [];
    const middleware = loopsight({ ...quiet, logger: { warn: (m: string) => warnings.push(m), error: () => {} } });
    closers.push(() => middleware.monitor.stop());
    const app = new Hono();
    app.use(middleware);
    app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), correlationId: getCorrelationId() ?? null }));
    for (let i = 0; i < 3; i++) {
      const res = await app.request(`/users/${i}`, { headers: { 'x-request-id': 'edge-1' } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ id: String(i), correlationId: null });
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/not served by @hono\/node-server/);
  });
});
