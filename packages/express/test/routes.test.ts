import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestRecord } from '@loopsight/core';
import { loopsight } from '@loopsight/express';
import express5 from 'express';
import express4 from 'express4';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { expressRoute } from '../src/route.js';

// biome-ignore lint/suspicious/noExplicitAny: Express 4 and 5 are loaded side by side, untyped.
async function serve(createExpress: any) {
  const app = createExpress();
  const middleware = loopsight({ loopLag: false, promises: false, onReport: () => {} });
  app.use(middleware);
  const records: RequestRecord[] = [];
  middleware.monitor.on('request', (r) => records.push(r));
  // biome-ignore lint/suspicious/noExplicitAny: see above
  const ok = (_req: any, res: any) => res.json({ ok: true });

  const members = createExpress.Router({ mergeParams: true });
  members.get('/:member', ok);
  const teams = createExpress.Router({ mergeParams: true });
  teams.use('/members', members);
  const org = createExpress.Router({ mergeParams: true });
  org.get('/', ok);
  org.get('/members', ok);
  org.use('/teams/:team', teams);
  app.use('/orgs/:org', org);
  // The same router mounted twice: the walk must follow the mount the request came through.
  app.use('/v1/orgs/:org', org);
  const sub = createExpress();
  sub.get('/:id', ok);
  app.use('/sub/:tenant', sub);
  app.get('/plain/:id', ok);

  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const get = async (path: string) => {
    const res = await request(url + path);
    await res.body.text();
    return res.statusCode;
  };
  const close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await middleware.monitor.stop();
  };
  return { get, records, close };
}

describe.each([
  ['express 4', express4],
  ['express 5', express5],
])('%s route labels', (_name, createExpress) => {
  it('are the matched layers’ patterns, nested routers with parameters included: 200 distinct paths, one label each', async () => {
    const app = await serve(createExpress);
    try {
      for (let i = 0; i < 200; i++) {
        // Ids that are also literals of the pattern ('members', 'teams', 'orgs') must not confuse it.
        const org = i % 50 === 0 ? 'orgs' : `org-${i}`;
        const team = i % 40 === 0 ? 'teams' : `t${i * 7}`;
        const member = i % 30 === 0 ? 'members' : encodeURIComponent(`m ${i * 3}`);
        expect(await app.get(`/orgs/${org}/teams/${team}/members/${member}?q=${i}`)).toBe(200);
        expect(await app.get(`/orgs/${org}/members`)).toBe(200);
        expect(await app.get(`/v1/orgs/${org}`)).toBe(200);
        expect(await app.get(`/plain/${i}`)).toBe(200);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      const byRoute = new Map<string | undefined, number>();
      for (const r of app.records) byRoute.set(r.route, (byRoute.get(r.route) ?? 0) + 1);
      expect(Object.fromEntries(byRoute)).toEqual({
        '/orgs/:org/teams/:team/members/:member': 200,
        '/orgs/:org/members': 200,
        '/v1/orgs/:org': 200,
        '/plain/:id': 200,
      });
    } finally {
      await app.close();
    }
  });

  it('are left unset (__unrouted__) for a 404, and never carry the path of a mounted sub-application', async () => {
    const app = await serve(createExpress);
    try {
      expect(await app.get('/nowhere/123')).toBe(404);
      expect(await app.get('/orgs/42/nothing-here')).toBe(404);
      expect(await app.get('/sub/acme/7')).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(app.records.map((r) => r.route)).toEqual([undefined, undefined, '/:id']);
    } finally {
      await app.close();
    }
  });
});

describe('router 2.0–2.2 (Express 5 before router 2.3 kept the mount pattern)', () => {
  // Those versions' Layer#match returns true and leaves the matched text and decoded params on the
  // layer; the installed router is 2.3, so the shape is built here from its documented behaviour.
  function mountLayer(matcher: RegExp, names: string[], inner: unknown[]) {
    const layer = {
      path: undefined as string | undefined,
      params: undefined as Record<string, string> | undefined,
      handle: { stack: inner },
      match(path: string) {
        const m = matcher.exec(path);
        if (m === null) return false;
        layer.path = m[0];
        layer.params = Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1] ?? '')]));
        return true;
      },
    };
    return layer;
  }
  const route = { path: '/:member' };
  const teams = mountLayer(/^\/teams\/([^/]+)/i, ['team'], [{ route }]);
  const app = { router: { stack: [{ route: { path: '/other' } }, mountLayer(/^\/orgs\/([^/]+)/i, ['org'], [teams])] } };
  const resolve = (url: string) => expressRoute({ route, baseUrl: '/orgs/x/teams/y', originalUrl: url, app } as never);

  it('puts each parameter back on the segment it came from', () => {
    expect(resolve('/orgs/acme/teams/t1/m9')).toBe('/orgs/:org/teams/:team/:member');
    // A value that is also a literal of the pattern, and an encoded one.
    expect(resolve('/orgs/orgs/teams/teams/m9?x=1')).toBe('/orgs/:org/teams/:team/:member');
    expect(resolve('/orgs/a%20b/teams/t%2F1/m9')).toBe('/orgs/:org/teams/:team/:member');
  });

  it('gives no template when a parameter is not a whole segment, rather than a guess', () => {
    const partial = mountLayer(/^\/files\/f-([^/.]+)\.json/i, ['name'], [{ route }]);
    const odd = { router: { stack: [partial] } };
    expect(expressRoute({ route, baseUrl: '/files/f-x.json', originalUrl: '/files/f-report.json/1', app: odd } as never)).toBeUndefined();
  });
});
