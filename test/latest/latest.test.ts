// What a user gets from `npm install @loopsight/<adapter>` next to the latest release of every
// framework and SDK: the packed tarballs and the peers' `latest` tags, one plain `npm install` (no
// --legacy-peer-deps, no version given), then the adapter contract on each. When a framework
// publishes a new major that a peer range does not admit yet, the install fails here first, with
// npm's ERESOLVE naming the package. `pnpm test:latest`; CI runs it after the suite.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npmEnv, packAll, root, run } from '../../scripts/packages.mjs';

// Every peer of an adapter or exporter, and what the apps need around them, unversioned: npm takes `latest`.
const PEERS = [
  'express',
  'fastify',
  'koa',
  '@koa/router',
  'hono',
  '@hono/node-server',
  '@nestjs/common',
  '@nestjs/core',
  '@nestjs/platform-express',
  '@nestjs/platform-fastify',
  'reflect-metadata',
  'rxjs',
  'prom-client',
  '@opentelemetry/api',
  '@opentelemetry/sdk-metrics',
];
const FRAMEWORKS = ['express', 'fastify', 'koa', 'hono', 'nest-express', 'nest-fastify'];

interface Result {
  framework: string;
  blocked: { status: number; echoed: string | null; body: { id?: string } };
  stall?: { durationMs: number; request?: { correlationId: string; route?: string }; culprit?: string };
  responses: { sent: string; status: number; echoed: string | null; seen?: string }[];
  events: { correlationId: string; route?: string; status?: number }[];
  prometheus: string[];
  otelStalls: { attributes: Record<string, unknown>; value: number }[];
}

let work: string;
let app: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'loopsight-latest-'));
  mkdirSync(join(work, 'tarballs'));
  const packed = await packAll(join(work, 'tarballs'));
  app = join(work, 'app');
  cpSync(join(root, 'test', 'latest', 'app'), app, { recursive: true });
  const dependencies = Object.fromEntries(packed.map((pkg: { name: string; tarball: string }) => [pkg.name, `file:${pkg.tarball}`]));
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'loopsight-latest-app', private: true, type: 'module', dependencies }, null, 2)}\n`,
  );
  // Plain npm: peer conflicts are errors (ERESOLVE), whatever a user's .npmrc says.
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...PEERS], {
    cwd: app,
    env: { ...npmEnv(), npm_config_legacy_peer_deps: 'false', npm_config_force: 'false' },
  });
}, 300_000);

afterAll(() => {
  if (process.env.LOOPSIGHT_KEEP_PACK) console.log(`latest-peers app kept in ${app}`);
  else if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

it('installs the latest release of every peer (and the OpenTelemetry SDK 3 line or later)', () => {
  const { dependencies } = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const installed = Object.fromEntries(
    PEERS.map((name) => [name, JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')).version as string]),
  );
  // What this run tested, in the log: the versions a failure is about.
  console.log(
    `latest peers: ${Object.entries(installed)
      .map(([n, v]) => `${n}@${v}`)
      .join(', ')}`,
  );
  for (const name of PEERS) expect(dependencies[name], name).toMatch(/^\^\d/);
  expect(Number(installed['@opentelemetry/sdk-metrics']?.split('.')[0])).toBeGreaterThanOrEqual(3);
  expect(Number(installed['@nestjs/core']?.split('.')[0])).toBeGreaterThanOrEqual(12);
});

describe.each(FRAMEWORKS)('%s on the latest peers', (framework) => {
  let result: Result;

  beforeAll(async () => {
    const { stdout } = await run(process.execPath, ['server.mjs', framework], { cwd: app, env: npmEnv(), timeoutMs: 80_000 });
    result = JSON.parse(stdout);
  }, 90_000);

  it('keeps the ids of 300 concurrent requests apart: each handler reads the id its request brought', () => {
    expect(result.responses).toHaveLength(300);
    const wrong = result.responses.filter((r) => r.status !== 200 || r.echoed !== r.sent || r.seen !== r.sent);
    expect(wrong).toEqual([]);
    const events = result.events.filter((e) => e.route === '/users/:id');
    expect(events.map((e) => e.correlationId).sort()).toEqual(result.responses.map((r) => r.sent).sort());
    expect(events.every((e) => e.status === 200)).toBe(true);
  });

  it('reports a 300 ms block with the request that blocked and the blocking function', () => {
    expect(result.blocked).toMatchObject({ status: 200, echoed: `${framework}-block`, body: { id: `${framework}-block` } });
    expect(result.stall?.request).toMatchObject({ correlationId: `${framework}-block`, route: '/block/:ms' });
    expect(result.stall?.durationMs).toBeGreaterThanOrEqual(200);
  });

  it('exports the stall to Prometheus (prom-client) and OpenTelemetry (SDK MeterProvider) under the route template', () => {
    expect(result.prometheus).toEqual(
      expect.arrayContaining([expect.stringMatching(/^loopsight_event_loop_stalls_total\{route="\/block\/:ms".* 1$/)]),
    );
    expect(result.otelStalls).toEqual(
      expect.arrayContaining([{ attributes: expect.objectContaining({ 'http.route': '/block/:ms' }), value: 1 }]),
    );
  });
});
