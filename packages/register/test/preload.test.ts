// Runs the built packages (`pnpm test` builds first): `node --import|--require @loopsight/register`
// in a child process, against applications that do not import loopsight.
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode } from '../../../test-support/child.js';
import { fixture, freePort, type Preload, packageDir, type RunningApp, startApp } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Observed {
  observed: string;
  id: string;
  route: string | null;
  status: number;
}
interface Report {
  type: string;
  kind?: string;
  durationMs?: number;
  culprit?: { functionName: string; url: string };
  request?: { correlationId: string; route?: string };
  candidates?: { correlationId: string }[];
  stackSource?: string;
  stackSkipped?: string;
  stack?: { functionName: string }[];
}

async function getJson(url: string, id?: string, dispatcher?: Agent) {
  // Without an agent, a connection of its own: a kept-alive one the app closes after its idle
  // timeout can be reused at that moment on a loaded machine ('other side closed').
  const res = await request(url, {
    headers: id === undefined ? {} : { 'x-request-id': id },
    ...(dispatcher ? { dispatcher } : { reset: true }),
  });
  return { status: res.statusCode, echoed: res.headers['x-request-id'], body: (await res.body.json()) as Record<string, unknown> };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function untilAnswers(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await request(url);
      await res.body.text();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`${url} never answered`);
}

/** The 'request' event of a request can come after its response: waits until every id was heard. */
function untilObserved(app: RunningApp, ids: string[]): Promise<unknown> {
  return app.waitFor('observed', () => {
    const heard = new Set(app.json<Observed>('observed').map((e) => e.id));
    return ids.every((id) => heard.has(id));
  });
}

/** Where each framework makes the route template known without an adapter. */
const ROUTES: Record<string, string | null> = { http: null, express: '/hops/:n', fastify: '/hops/:n', koa: null };

/**
 * How many concurrent requests each isolation test sends, over how many connections. Isolation is
 * the preload's scope around the http server's 'request' event plus core's context: the same source
 * for every framework and both builds (--import loads the ESM one, --require the CommonJS one).
 * http (the preload alone) and Express (the most used) under --import carry the deep load; the
 * others still send 300 requests, 32 in flight at a time and about ten on each kept-alive
 * connection, through their own build, routing and middleware (where a framework could lose the
 * scope), and check each request's id, route template and single 'request' event: what is theirs.
 */
const DEEP = { requests: 1200, connections: 256 };
const CHEAP = { requests: 300, connections: 32 };
const load = (preload: Preload, framework: string) =>
  preload === 'import' && (framework === 'http' || framework === 'express') ? DEEP : CHEAP;

// Each framework's two apps (--import and --require) run side by side: they mostly wait (process
// start, the watchdog's start, a block), and each is its own process with its own watchdog.
describe.each(Object.keys(ROUTES))('an unmodified %s app', (framework) => {
  describe.concurrent.each(['import', 'require'] as Preload[])('node --%s @loopsight/register', (preload) => {
    let app: RunningApp;
    let metricsPort: number;
    let agent: Agent;
    const entry = fixture(preload === 'import' ? 'app.mjs' : 'app.cjs');

    beforeAll(async () => {
      metricsPort = await freePort();
      // Stack captures are rate-limited: the block is tested first, before the concurrent requests
      // can stall a loaded machine, and stalls under 200 ms are not what this suite looks at.
      app = await startApp(preload, [entry, framework], {
        LOOPSIGHT_PROMISES: 'full',
        LOOPSIGHT_STALL_THRESHOLD_MS: '200',
        LOOPSIGHT_METRICS_PORT: String(metricsPort),
      });
      agent = new Agent({ connections: load(preload, framework).connections });
      // Up: the metrics port answers; then give the watchdog's worker time to come up, as a
      // service's first requests would.
      await untilAnswers(`http://127.0.0.1:${metricsPort}/metrics`);
      await sleep(300);
    });
    afterAll(async () => {
      await agent.close();
      // The process must then exit on its own: nothing of loopsight (metrics server, watchdog,
      // timers, channels) keeps it alive.
      expect(await app.close()).toBe(0);
    });

    it.sequential('reports a 350 ms block with its function and the id of the request that blocked', async () => {
      // Until the watchdog's thread is up (a loaded machine can take longer than the wait above), a
      // stall is timed without a stack or a request (stackSkipped 'unavailable'): block again then.
      let stall: Report | undefined;
      let id = '';
      for (let attempt = 1; stall === undefined; attempt++) {
        id = `block-${attempt}`;
        const before = new Set(app.lines());
        const { status } = await getJson(`${app.url}/block/350`, id);
        expect(status).toBe(200);
        const mine = (scope?: { correlationId: string }) => scope?.correlationId === id;
        const unnamed = (r: Report) => r.stackSkipped === 'unavailable' && (r.durationMs ?? 0) > 250 && !before.has(JSON.stringify(r));
        const report = await app.waitFor<Report>(
          'loopsight',
          (r) => r.type === 'stall' && (mine(r.request) || (r.candidates ?? []).some(mine) || unnamed(r)),
        );
        // A pause later than the block itself (pauseDelayMs) stops the code after it: block again too.
        const afterTheBlock = report.stackSource === 'late-pause' && !report.stack?.some((f) => f.functionName === 'blockTheLoop');
        if ((report.stackSkipped !== 'unavailable' && !afterTheBlock) || attempt === 5) stall = report;
        else await sleep(500);
      }
      if (stall.stackSource === 'late-pause') {
        // A loaded machine woke the watchdog more than 25 ms late: the stack is still the block's, but
        // the report names the request only among its candidates and names no culprit (docs/loop-lag.md).
        expect(
          stall.stack?.some((f) => f.functionName === 'blockTheLoop'),
          JSON.stringify(stall),
        ).toBe(true);
      } else {
        expect(stall.stackSource).toBe('pause');
        expect(stall.culprit?.functionName).toBe('blockTheLoop');
        expect(stall.culprit?.url).toContain('apps.cjs');
        expect(stall.request?.correlationId).toBe(id);
      }
      // Generous: a loaded machine reports late, never much early.
      expect(stall.durationMs).toBeGreaterThan(250);
    });

    it.sequential('reports a floating promise with the request that made it', async () => {
      await getJson(`${app.url}/float`, 'float-1');
      const report = await app.waitFor<Report>('loopsight', (r) => r.type === 'promise' && r.request?.correlationId === 'float-1');
      expect(report.kind).toBe('floating');
      expect(report.culprit?.functionName).toBe('sendReceipt');
    });

    it.sequential(`echoes and isolates the ids of ${load(preload, framework).requests} concurrent requests across timers, fs, setImmediate, an EventEmitter and Promise.all`, async () => {
      const ids = Array.from({ length: load(preload, framework).requests }, (_, i) => `req-${i}-${Math.random().toString(36).slice(2)}`);
      const results = await Promise.all(ids.map((id, i) => getJson(`${app.url}/hops/${i}`, id, agent).then((r) => ({ id, ...r }))));
      const wrong = results.filter(
        (r) => r.status !== 200 || r.echoed !== r.id || r.body.id !== r.id || (r.body.seen as string[]).some((s) => s !== r.id),
      );
      expect(wrong.slice(0, 3)).toEqual([]);
      // One 'request' event per request, with the route template where the framework tells it.
      const events = new Map<string, Observed[]>();
      await untilObserved(app, ids);
      for (const e of app.json<Observed>('observed')) events.set(e.id, [...(events.get(e.id) ?? []), e]);
      for (const id of ids) expect(events.get(id), id).toEqual([{ observed: 'request', id, route: ROUTES[framework], status: 200 }]);
    });

    it.sequential('generates an id when none comes in, echoes it and reads the same one in the handler', async () => {
      const { echoed, body } = await getJson(`${app.url}/hops/1`);
      expect(echoed).toMatch(UUID);
      expect(body.id).toBe(echoed);
    });

    it.sequential('carries the id on outbound fetch and http.get', async () => {
      const { body } = await getJson(`${app.url}/outbound`, 'outbound-1');
      expect(body).toEqual({ id: 'outbound-1', viaFetch: 'outbound-1', viaHttp: 'outbound-1' });
    });

    it.sequential('serves Prometheus metrics on LOOPSIGHT_METRICS_PORT', async () => {
      // After the block above: its stall is counted.
      const res = await request(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(res.statusCode).toBe(200);
      const text = await res.body.text();
      expect(text).toContain('loopsight_event_loop_delay_seconds_bucket');
      expect(text).toMatch(/^loopsight_event_loop_stalls_total\{route="[^"]+",expected="false"\} [1-9]/m);
      // The metrics server's own requests are not the application's.
      expect(app.json<Observed>('observed').some((e) => e.status === 200 && e.route === '/metrics')).toBe(false);
      const other = await request(`http://127.0.0.1:${metricsPort}/other`);
      expect(other.statusCode).toBe(404);
      await other.body.text();
    });
  });
});

// Each pair runs side by side: small apps that mostly wait.
describe('bad LOOPSIGHT_* values', () => {
  it.concurrent.each(['import', 'require'] as const)('give one line each on stderr and the default (--%s)', async (preload) => {
    const app = await startApp(preload, [fixture('app.mjs'), 'http'], {
      LOOPSIGHT_PROMISES: 'fulll',
      LOOPSIGHT_STALL_THRESHOLD_MS: '-5',
      LOOPSIGHT_METRICS_PORT: '99999',
      LOOPSIGHT_ECHO: 'maybe',
      LOOPSIGHT_HEADER: 'x request id',
    });
    try {
      const { echoed, body } = await getJson(`${app.url}/hops/1`, 'bad-1');
      // The defaults: the id echoed under x-request-id.
      expect(echoed).toBe('bad-1');
      expect(body.id).toBe('bad-1');
      // The default threshold (100 ms) still reports a 350 ms block.
      await getJson(`${app.url}/block/350`, 'bad-2');
      // Only the threshold is looked at here: the block comes right after the start, before the
      // watchdog's thread may be up, so its report can name no request (stackSkipped 'unavailable').
      await app.waitFor<Report>('loopsight', (r) => r.type === 'stall' && (r.durationMs ?? 0) > 300);
      const lines = app.lines().filter((l) => !l.startsWith('{'));
      expect(lines).toEqual([
        expect.stringMatching(
          /^loopsight: LOOPSIGHT_STALL_THRESHOLD_MS="-5" ignored: must be an integer from 0 to \d+; the default applies$/,
        ),
        expect.stringMatching(/^loopsight: LOOPSIGHT_PROMISES="fulll" ignored: must be one of off, sampled, full; the default applies$/),
        expect.stringMatching(/^loopsight: LOOPSIGHT_HEADER="x request id" ignored: .*header.*; the default applies$/),
        'loopsight: LOOPSIGHT_ECHO="maybe" ignored: must be true or false; the default applies',
        'loopsight: LOOPSIGHT_METRICS_PORT="99999" ignored: must be an integer from 0 to 65535; the default applies',
      ]);
    } finally {
      expect(await app.close()).toBe(0);
    }
  });
});

describe.concurrent('LOOPSIGHT_* values the preload passes on', () => {
  it("a value core refuses is named with core's own rule", async () => {
    const app = await startApp('import', [fixture('app.mjs'), 'http'], { LOOPSIGHT_STALL_THRESHOLD_MS: '5' });
    try {
      await getJson(`${app.url}/hops/1`);
      expect(app.lines().filter((l) => !l.startsWith('{'))).toEqual([
        expect.stringMatching(
          /^loopsight: LOOPSIGHT_STALL_THRESHOLD_MS="5" ignored: options\.loopLag\.stallThresholdMs .+; the default applies$/,
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
