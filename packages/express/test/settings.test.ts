import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loopsight } from '@loopsight/express';
import express5 from 'express';
import express4 from 'express4';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

// biome-ignore lint/suspicious/noExplicitAny: Express 4 and 5 are loaded side by side, untyped.
async function serve(app: any): Promise<string> {
  const server = createServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function status(url: string): Promise<number> {
  const res = await request(url);
  await res.body.dump();
  return res.statusCode;
}

for (const [name, createExpress] of [
  ['express 4', express4],
  ['express 5', express5],
] as const) {
  describe(`${name}: routing settings and where loopsight is mounted`, () => {
    it("app.set() before app.use(loopsight()): 'strict routing' and 'case sensitive routing' work, and nothing is said", async () => {
      const warnings: string[] = [];
      const app = createExpress();
      app.set('strict routing', true);
      app.set('case sensitive routing', true);
      app.use(loopsight({ logger: { warn: (m) => warnings.push(m) }, onReport: () => {} }));
      app.get('/Users', (_req, res) => res.send('ok'));
      const url = await serve(app);
      expect(await status(`${url}/Users`)).toBe(200);
      expect(await status(`${url}/Users/`)).toBe(404);
      expect(await status(`${url}/users`)).toBe(404);
      expect(warnings).toEqual([]);
    });

    it('app.set() after app.use(loopsight()): routes behave as after any first middleware, and loopsight says so once with the fix', async () => {
      const warnings: string[] = [];
      const withLoopsight = createExpress();
      withLoopsight.use(loopsight({ logger: { warn: (m) => warnings.push(m) }, onReport: () => {} }));
      withLoopsight.set('strict routing', true);
      withLoopsight.set('case sensitive routing', true);
      withLoopsight.get('/Users', (_req, res) => res.send('ok'));
      // The same app without loopsight: Express made its router at the first app.use() too.
      const without = createExpress();
      without.use((_req, _res, next) => next());
      without.set('strict routing', true);
      without.set('case sensitive routing', true);
      without.get('/Users', (_req, res) => res.send('ok'));
      const [a, b] = await Promise.all([serve(withLoopsight), serve(without)]);
      for (const path of ['/Users', '/Users/', '/users', '/users/']) {
        expect(await status(`${a}${path}`), path).toBe(await status(`${b}${path}`));
      }
      expect(warnings).toHaveLength(2);
      expect(warnings[0]).toMatch(
        /app\.set\('strict routing', true\) came after the first app\.use\(\).*Call app\.set\(\) before app\.use\(loopsight\(\)\)/,
      );
      expect(warnings[1]).toMatch(/app\.set\('case sensitive routing', true\)/);
    });
  });
}
