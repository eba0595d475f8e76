// The preload beside what an application brings: its own adapter, worker threads, an OpenTelemetry
// SDK, and the values of LOOPSIGHT_* that core refuses or that turn it off. Nothing here is timed
// (preload.test.ts has the blocks): it runs with the parallel files. Like preload.test.ts, it runs
// the built packages in child processes.
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode } from '../../../test-support/child.js';
import {
  fixture,
  freePort,
  getJson,
  type Observed,
  type Preload,
  packageDir,
  type RunningApp,
  startApp,
  UUID,
  untilObserved,
} from './helpers.js';

/** As the cheap load of preload.test.ts: 300 requests, 32 in flight, about ten on each connection. */
const CHEAP = { requests: 300, connections: 32 };

describe.concurrent('LOOPSIGHT_* values the preload passes on', () => {
  it("a value core refuses is named with core's own rule", async () => {
    const app = await startApp('import', [fixture('app.mjs'), 'http'], { LOOPSIGHT_STALL_THRESHOLD_MS: '5' });
    try {
      await getJson(`${app.url}/hops/1`);
      expect(app.lines().filter((l) => !l.startsWith('{'))).toEqual([
        expect.stringMatching(
          /^loopsight: LOOPSIGHT_STALL_THRESHOLD_MS="5" ignored: options\.loopLag\.stallThresholdMs .+; the default applies \[LOOPSIGHT_ENV_IGNORED\]$/,
        ),
      ]);
    } finally {
      expect(await app.close()).toBe(0);
    }
  });

  it('LOOPSIGHT_ENABLED=false starts nothing', async () => {
    const app = await startApp('import', [fixture('app.mjs'), 'http'], { LOOPSIGHT_ENABLED: 'false' });
    try {
      const { echoed } = await getJson(`${app.url}/hops/1`, 'off-1');
      expect(echoed).toBeUndefined();
      expect(app.lines()).toEqual([]);
    } finally {
      expect(await app.close()).toBe(0);
    }
  });
});

describe.each(['express', 'fastify'] as const)('the preload and the %s adapter in one app', (framework) => {
  describe.concurrent.each(['import', 'require'] as Preload[])('--%s', (preload) => {
    let app: RunningApp;
    let agent: Agent;
    beforeAll(async () => {
      app = await startApp(preload, [fixture(preload === 'import' ? 'app.mjs' : 'app.cjs'), `${framework}+adapter`]);
      agent = new Agent({ connections: CHEAP.connections });
    });
    afterAll(async () => {
      await agent.close();
      expect(await app.close()).toBe(0);
    });

    // 300 requests (CHEAP): the deep load runs in the suites above; what is looked at here is that
    // the adapter's scope replaces the preload's, once per request, under concurrency.
    it.sequential("give each request one scope (the adapter's) and one 'request' event", async () => {
      const ids = Array.from({ length: CHEAP.requests }, (_, i) => `both-${i}-${Math.random().toString(36).slice(2)}`);
      const results = await Promise.all(ids.map((id, i) => getJson(`${app.url}/hops/${i}`, id, agent).then((r) => ({ id, ...r }))));
      expect(results.filter((r) => r.echoed !== r.id || (r.body.seen as string[]).some((s) => s !== r.id)).slice(0, 3)).toEqual([]);
      await untilObserved(app, ids);
      const counts = new Map<string, number>();
      for (const e of app.json<Observed>('observed')) counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
      expect(ids.filter((id) => counts.get(id) !== 1)).toEqual([]);
      // The adapter's route template, not the preload's guess.
      expect(app.json<Observed>('observed').find((e) => e.id === ids[0])?.route).toBe('/hops/:n');
      const scopes = await getJson(`${app.url}/scopes`, 'scopes-1');
      expect(scopes.body).toEqual({ preload: 0, adapter: 1 });
    });

    it.sequential('keeps a generated id when the adapter takes the request over', async () => {
      const { echoed, body } = await getJson(`${app.url}/hops/1`);
      expect(echoed).toMatch(UUID);
      expect(body.id).toBe(echoed);
    });
  });
});

describe.concurrent.each(['import', 'require'] as const)('a worker thread under the preload (--%s)', (preload) => {
  it('inherits it, starts its own monitor (no second metrics server) and the process exits on its own', async () => {
    const port = await freePort();
    const flag = preload === 'import' ? '--import' : '--require';
    const child = await runNode([flag, '@loopsight/register', fixture('worker.mjs')], {
      cwd: packageDir,
      timeoutMs: 15_000,
      env: { ...process.env, NODE_OPTIONS: '', LOOPSIGHT_METRICS_PORT: String(port) },
    });
    // Nothing but reports (loading modules at startup can stall a loaded machine): no warning, no EADDRINUSE.
    expect(child.stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{"loopsight"'))).toEqual([]);
    expect(child.code).toBe(0);
    const seen = JSON.parse(child.stdout) as { worker: { execArgv: string[]; monitor: boolean }; main: boolean };
    expect(seen.worker.execArgv).toContain('@loopsight/register');
    expect(seen).toMatchObject({ worker: { monitor: true }, main: true });
  });
});

describe.concurrent('OpenTelemetry under the preload', () => {
  const run = async (env: Record<string, string>) => {
    const child = await runNode(['--import', '@loopsight/register', fixture('otel-app.mjs')], {
      cwd: packageDir,
      timeoutMs: 30_000,
      env: { ...process.env, NODE_OPTIONS: '', ...env },
    });
    expect(child.code, child.stderr).toBe(0);
    return (JSON.parse(child.stdout) as { names: string[] }).names;
  };

  it('attaches the exporter once the application registers an SDK, after the preload ran', async () => {
    expect(await run({})).toEqual(
      expect.arrayContaining(['nodejs.eventloop.utilization', 'nodejs.eventloop.delay.p99', 'loopsight.requests.inflight']),
    );
  });

  it('leaves the SDK alone with LOOPSIGHT_OTEL=off', async () => {
    expect(await run({ LOOPSIGHT_OTEL: 'off' })).toEqual([]);
  });
});
