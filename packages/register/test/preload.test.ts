// Runs the built packages (`pnpm test` builds first): `node --import|--require @loopsight/register`
// in a child process, against applications that do not import loopsight.
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, freePort, getJson, type Observed, type Preload, type RunningApp, startApp, UUID, untilObserved } from './helpers.js';

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
          /^loopsight: LOOPSIGHT_STALL_THRESHOLD_MS="-5" ignored: must be an integer from 0 to \d+; the default applies \[LOOPSIGHT_ENV_IGNORED\]$/,
        ),
        expect.stringMatching(
          /^loopsight: LOOPSIGHT_PROMISES="fulll" ignored: must be one of off, sampled, full; the default applies \[LOOPSIGHT_ENV_IGNORED\]$/,
        ),
        expect.stringMatching(
          /^loopsight: LOOPSIGHT_HEADER="x request id" ignored: .*header.*; the default applies \[LOOPSIGHT_ENV_IGNORED\]$/,
        ),
        'loopsight: LOOPSIGHT_ECHO="maybe" ignored: must be true or false; the default applies [LOOPSIGHT_ENV_IGNORED]',
        'loopsight: LOOPSIGHT_METRICS_PORT="99999" ignored: must be an integer from 0 to 65535; the default applies [LOOPSIGHT_ENV_IGNORED]',
      ]);
    } finally {
      expect(await app.close()).toBe(0);
    }
  });
});
