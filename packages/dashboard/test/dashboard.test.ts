import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createMonitor, type Monitor, type StallReport } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { createDashboard } from '@loopsight/dashboard';
import { describe, expect, it } from 'vitest';
import { frameworks } from './apps.js';

const express = frameworks[0] as (typeof frameworks)[number];
const quiet = { loopLag: { windowMs: 1000 }, promises: { mode: 'full' as const }, onReport: () => {}, logger: { warn: () => {} } };

interface Feed {
  /** The next event of this name (earlier events of other names are skipped). */
  next(name: string, timeoutMs?: number): Promise<unknown>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Reads a server-sent events stream the way EventSource does: `event:` and `data:` lines, blank line ends one. */
async function openFeed(url: string, init: RequestInit = {}): Promise<Feed> {
  const abort = new AbortController();
  const res = await fetch(url, { ...init, signal: abort.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  const events: { name: string; data: unknown }[] = [];
  const waiters: (() => void)[] = [];
  let buffer = '';
  const ended = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const name = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
          const data = /^data: (.*)$/m.exec(block)?.[1] ?? 'null';
          events.push({ name, data: JSON.parse(data) });
          for (const wake of waiters.splice(0)) wake();
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    ended,
    close: () => abort.abort(),
    async next(name, timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const at = events.findIndex((e) => e.name === name);
        if (at !== -1) return events.splice(0, at + 1).at(-1)?.data;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no '${name}' event within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request through node:http, which sends the Host header it is given (fetch does not). Aborted after `ms` for a stream. */
function get(url: string, options: { method?: string; host?: string; ms?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.host !== undefined) headers.host = options.host;
    const req = httpRequest(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      res.on('end', done);
      // A stream: answer with what came within `ms`.
      if (options.ms !== undefined)
        setTimeout(() => {
          done();
          req.destroy();
        }, options.ms);
    });
    req.on('error', (error) => {
      if (!req.destroyed || (error as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(error);
    });
    req.end();
  });
}

const DOCUMENTED_HEADERS = {
  'content-security-policy': expect.stringContaining("default-src 'none'; script-src 'self'"),
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/**
 * A client that asks for the feed and stops reading once its answer starts (so the caller knows it
 * holds a slot): it reads no more than the first chunk, and never closes.
 */
function nonReader(url: string): Promise<Socket> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`);
    });
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      const head = chunk.toString('latin1');
      if (head.startsWith('HTTP/1.1 200 ')) resolve(socket);
      else reject(new Error(`the feed answered ${head.split('\r\n')[0]}`));
    });
    socket.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function stall(correlationId: string): StallReport {
  return {
    type: 'stall',
    durationMs: 250,
    at: Date.now(),
    stack: [{ functionName: 'renderInvoice', url: 'file:///srv/app/invoice.js', line: 12, column: 3 }],
    stackSource: 'pause',
    culprit: { functionName: 'renderInvoice', url: 'file:///srv/app/invoice.js', line: 12, column: 3 },
    request: { correlationId, method: 'GET', route: '/invoices/:id', startedAt: Date.now() - 300 },
    inflight: 1,
  };
}

describe('createDashboard options', () => {
  const monitor = createMonitor();
  it.each([
    [{ path: 'loopsight' }, /options\.path must be a path/],
    [{ path: '/loopsight/' }, /options\.path must be a path/],
    [{ path: '/a"b' }, /options\.path must be a path/],
    [{ authorize: true }, /options\.authorize must be a function/],
    [{ maxReports: 0 }, /options\.maxReports must be a positive integer up to 1000 \(got 0\)/],
    [{ historySeconds: 1.5 }, /options\.historySeconds must be a positive integer up to 3600/],
    [{ maxClients: 101 }, /options\.maxClients must be a positive integer up to 100/],
    [{ refresh: 1 }, /unknown option options\.refresh; accepted: path, authorize/],
  ])('%j throws a TypeError naming it', (options, message) => {
    expect(() => createDashboard(monitor, options as never)).toThrow(TypeError);
    expect(() => createDashboard(monitor, options as never)).toThrow(message);
  });
  it('needs a Monitor', () => {
    expect(() => createDashboard({} as Monitor)).toThrow(/createDashboard\(monitor\) takes a Monitor/);
  });
});

// The tests below each start an app of their own and mostly wait (for ticks, feedSeconds, history),
// so they run side by side (vitest's maxConcurrency: 5 at a time); none blocks the loop.
describe.concurrent('the dashboard over HTTP (Express)', () => {
  it('serves the page, its script and styles to loopback clients by default, with a strict CSP', async ({ onTestFinished }) => {
    const app = await express.start(quiet, {});
    onTestFinished(() => app.close());
    const page = await fetch(`${app.url}/loopsight`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    expect(html).toContain('<script defer src="/loopsight/dashboard.js"></script>');
    expect(html).not.toMatch(/<script>|<style>| on\w+=/);
    const script = await fetch(`${app.url}/loopsight/dashboard.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    // uPlot is inside: nothing is fetched from elsewhere.
    expect(await script.text()).toContain('uplot');
    expect((await fetch(`${app.url}/loopsight/dashboard.css`)).status).toBe(200);
    expect((await fetch(`${app.url}/loopsight/dashboard.js`, { method: 'HEAD' })).status).toBe(200);
  });

  it('answers only under its path and leaves everything else to the app', async ({ onTestFinished }) => {
    const app = await express.start(quiet, { path: '/ops/loop' });
    onTestFinished(() => app.close());
    expect((await fetch(`${app.url}/loopsight`)).status).toBe(404);
    expect((await fetch(`${app.url}/ops/loopx`)).status).toBe(404);
    await expect((await fetch(`${app.url}/ops/loop/nothing`)).text()).resolves.toBe('Not Found\n');
    expect((await fetch(`${app.url}/ops/loop`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${app.url}/ops/loop?x=1`)).status).toBe(200);
    const blocked = await fetch(`${app.url}/block/1`, { headers: { 'x-request-id': 'pass-1' } });
    expect(await blocked.json()).toMatchObject({ id: 'pass-1' });
  });

  it('refuses every path with 403 when authorize says no, throws or rejects', async ({ onTestFinished }) => {
    let answer: () => boolean | Promise<boolean> = () => false;
    const app = await express.start(quiet, { authorize: () => answer() });
    onTestFinished(() => app.close());
    for (const deny of [() => false, () => Promise.resolve(false), () => Promise.reject(new Error('auth down')), () => 1 as never]) {
      answer = deny;
      for (const path of ['/loopsight', '/loopsight/events', '/loopsight/dashboard.js', '/loopsight/nothing']) {
        const res = await fetch(app.url + path);
        expect(res.status, path).toBe(403);
        expect(await res.text()).toBe('Forbidden\n');
      }
    }
    answer = () => {
      throw new Error('auth down');
    };
    expect((await fetch(`${app.url}/loopsight`)).status).toBe(403);
    expect(app.monitor.counters().internalErrors).toBeGreaterThan(0);
  });

  it('sends a snapshot, then a tick a second and each report as it comes, bounded', async ({ onTestFinished }) => {
    const app = await express.start(quiet, { maxReports: 3 });
    onTestFinished(() => app.close());
    for (const n of [1, 2, 3, 4]) internals(app.monitor).report(stall(`before-${n}`));
    const feed = await openFeed(`${app.url}/loopsight/events`);
    try {
      const snapshot = (await feed.next('snapshot')) as { stalls: { request: { id: string } | null }[]; points: unknown[] };
      // The last 3, newest first (a real stall of a loaded machine may be among them).
      expect(snapshot.stalls).toHaveLength(3);
      const ours = snapshot.stalls.map((s) => s.request?.id).filter((id) => id?.startsWith('before-'));
      expect(ours.length).toBeGreaterThanOrEqual(2);
      expect(ours).toEqual(['before-4', 'before-3', 'before-2'].slice(0, ours.length));
      expect(snapshot.points.length).toBeGreaterThan(0);
      const tick = (await feed.next('tick', 3_000)) as { point: number[]; counters: { stalls: number } };
      expect(tick.point).toHaveLength(6);
      expect(tick.counters.stalls).toBeGreaterThanOrEqual(4);
      // Text from a request is cut to 300 characters (and sent as JSON, rendered as text by the page).
      internals(app.monitor).report(stall('x'.repeat(1000)));
      // The one injected (its id is all x), not a loaded machine's own stall that may come first.
      type Live = { request: { id: string } | null; culprit: { fn: string } };
      let live = (await feed.next('stall')) as Live;
      for (let i = 0; i < 10 && !live.request?.id.startsWith('x'); i++) live = (await feed.next('stall')) as Live;
      expect(live.request?.id).toHaveLength(301);
      expect(live.culprit.fn).toBe('renderInvoice');
    } finally {
      feed.close();
    }
  });

  it('lists requests in flight oldest first, without its own feeds', async ({ onTestFinished }) => {
    const app = await express.start(quiet, {});
    onTestFinished(() => app.close());
    const feed = await openFeed(`${app.url}/loopsight/events`);
    const waiting = fetch(`${app.url}/orders/7/wait/2500`, { headers: { 'x-request-id': 'wait-7' } });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const later = fetch(`${app.url}/orders/8/wait/2000`, { headers: { 'x-request-id': 'wait-8' } });
      // The first tick that sees the second request (on a busy machine it can arrive a tick late);
      // both wait until about 2.2 s from now.
      type Tick = { inflight: { total: number; oldest: { id: string; route: string }[] } };
      let tick = (await feed.next('tick')) as Tick;
      for (let n = 0; n < 3 && tick.inflight.total < 2; n++) tick = (await feed.next('tick')) as Tick;
      expect(tick.inflight.oldest.map((s) => s.id)).toEqual(['wait-7', 'wait-8']);
      expect(tick.inflight.total).toBe(2);
      await later;
    } finally {
      feed.close();
      await waiting;
    }
  });

  it('keeps a bounded chart history with no page open, reads only loop stats then, and refuses feeds past maxClients', async ({
    onTestFinished,
  }) => {
    const app = await express.start(quiet, { maxClients: 1, historySeconds: 3 });
    onTestFinished(() => app.close());
    // Counts the dashboard's reads of the real monitor: with no page open it reads loop stats for
    // the chart point, and never the in-flight list or the counters.
    const monitor = app.monitor;
    const reads = { loopStats: 0, inflight: 0 };
    const loopStats = monitor.loopStats.bind(monitor);
    const inflight = monitor.inflight.bind(monitor);
    monitor.loopStats = () => {
      reads.loopStats++;
      return loopStats();
    };
    monitor.inflight = () => {
      reads.inflight++;
      return inflight();
    };
    await sleep(4_500);
    expect(reads.inflight).toBe(0);
    expect(reads.loopStats).toBeGreaterThanOrEqual(3);
    expect(reads.loopStats).toBeLessThanOrEqual(6);
    const feed = await openFeed(`${app.url}/loopsight/events`);
    const snapshot = (await feed.next('snapshot')) as { points: number[][] };
    // historySeconds points recorded before the page opened, and the one read for the snapshot.
    expect(snapshot.points).toHaveLength(4);
    await feed.next('tick');
    expect(reads.inflight).toBeGreaterThanOrEqual(2);
    const second = await fetch(`${app.url}/loopsight/events`);
    expect(second.status).toBe(503);
    feed.close();
    await sleep(300);
    const after = reads.inflight;
    await sleep(1_500);
    expect(reads.inflight).toBe(after);
  });

  it('says why a stall has no culprit or no request', async ({ onTestFinished }) => {
    const app = await express.start(quiet, {});
    onTestFinished(() => app.close());
    const feed = await openFeed(`${app.url}/loopsight/events`);
    try {
      await feed.next('snapshot');
      const bare = { type: 'stall', durationMs: 300, at: Date.now(), stack: [], stackSource: 'none', inflight: 2 } as const;
      const cases: [Partial<StallReport>, RegExp][] = [
        [{ stackSkipped: 'unavailable', debuggerAttached: true }, /a debugger may be attached/],
        [{ stackSkipped: 'rate-limited' }, /maxStacksPerMinute/],
        [{ stackSkipped: 'disabled' }, /captureStacks is false/],
        [{ stackSkipped: 'unavailable' }, /inspector could not be used/],
        [{ inflight: 0 }, /no request was running/],
        [
          { stackSource: 'late-pause', stack: [{ functionName: 'parse', url: 'node:internal/x', line: 1, column: 1 }] },
          /pause landed after native code returned/,
        ],
      ];
      for (const [fields, why] of cases) {
        internals(app.monitor).report({ ...bare, ...fields } as StallReport);
        const view = (await feed.next('stall')) as { why: string };
        expect(view.why, JSON.stringify(fields)).toMatch(why);
        expect(view.why, JSON.stringify(fields)).toMatch(/request/);
      }
      internals(app.monitor).report(stall('complete-1'));
      expect(((await feed.next('stall')) as { why: string }).why).toBe('');
    } finally {
      feed.close();
    }
  });

  it('ends its feeds when the monitor stops', async ({ onTestFinished }) => {
    const app = await express.start(quiet, {});
    onTestFinished(() => app.close());
    const feed = await openFeed(`${app.url}/loopsight/events`);
    await feed.next('snapshot');
    await app.monitor.stop();
    await expect(Promise.race([feed.ended.then(() => 'ended'), new Promise((r) => setTimeout(() => r('open'), 2_000))])).resolves.toBe(
      'ended',
    );
    expect((await fetch(`${app.url}/loopsight/events`)).status).toBe(503);
  });
});

describe.concurrent.each(frameworks)('safe by default ($name)', (framework) => {
  it('refuses a Host that does not name this machine (DNS rebinding), serves loopback names', async ({ onTestFinished }) => {
    const app = await framework.start(quiet, {});
    onTestFinished(() => app.close());
    const port = new URL(app.url).port;
    for (const host of [
      'evil.example',
      `evil.example:${port}`,
      `localhost.evil.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      'localhost:x',
    ]) {
      for (const path of ['/loopsight', '/loopsight/events', '/loopsight/dashboard.js']) {
        const res = await get(app.url + path, { host, ms: 500 });
        expect(res.status, `${host} ${path}`).toBe(403);
        expect(res.body).toBe('Forbidden\n');
      }
    }
    // No Host at all (HTTP/1.0): no browser sends that, and nothing says it is this machine.
    const noHost = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.end('GET /loopsight HTTP/1.0\r\n\r\n'));
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        answer += chunk;
      });
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
    expect(noHost).toMatch(/^HTTP\/1\.[01] 403 /);
    for (const host of [`localhost:${port}`, 'LOCALHOST', `app.localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost.']) {
      expect((await get(`${app.url}/loopsight`, { host })).status, host).toBe(200);
      const events = await get(`${app.url}/loopsight/events`, { host, ms: 300 });
      expect(events.status, host).toBe(200);
      expect(events.body).toContain('event: snapshot');
    }
  });

  it('answers HEAD on every path with the headers a GET gets, and a HEAD of the feed holds no slot', async ({ onTestFinished }) => {
    const app = await framework.start(quiet, { maxClients: 1 });
    onTestFinished(() => app.close());
    for (const path of ['/loopsight', '/loopsight/dashboard.js', '/loopsight/dashboard.css', '/loopsight/events', '/loopsight/nothing']) {
      const head = await get(app.url + path, { method: 'HEAD', ms: 2_000 });
      const full = await get(app.url + path, { ms: 300 });
      expect(head.status, path).toBe(full.status);
      expect(head.headers['content-type'], path).toBe(full.headers['content-type']);
      expect(head.headers, path).toMatchObject(DOCUMENTED_HEADERS);
      expect(head.body, path).toBe('');
    }
    // Three HEADs of the feed, then a page still gets the one slot.
    for (let i = 0; i < 3; i++) expect((await get(`${app.url}/loopsight/events`, { method: 'HEAD', ms: 2_000 })).status).toBe(200);
    const feed = await openFeed(`${app.url}/loopsight/events`);
    await feed.next('snapshot');
    feed.close();
  });

  it('sends the documented headers on every response: page, assets, feed, 403, 404, 405, 503', async ({ onTestFinished }) => {
    let allow = true;
    const app = await framework.start(quiet, { maxClients: 1, authorize: () => allow });
    onTestFinished(() => app.close());
    const seen: [string, Answer][] = [];
    for (const path of ['/loopsight', '/loopsight/dashboard.js', '/loopsight/dashboard.css', '/loopsight/nothing']) {
      seen.push([path, await get(app.url + path)]);
    }
    seen.push(['feed', await get(`${app.url}/loopsight/events`, { ms: 300 })]);
    const holder = await openFeed(`${app.url}/loopsight/events`);
    await holder.next('snapshot');
    seen.push(['503 maxClients', await get(`${app.url}/loopsight/events`)]);
    holder.close();
    allow = false;
    seen.push(['403', await get(`${app.url}/loopsight`)]);
    allow = true;
    if (framework.name !== 'fastify') seen.push(['405', await get(`${app.url}/loopsight`, { method: 'POST' })]);
    await app.monitor.stop();
    seen.push(['503 stopped', await get(`${app.url}/loopsight/events`)]);
    expect(seen.map(([what, res]) => `${what} ${res.status}`)).toEqual([
      '/loopsight 200',
      '/loopsight/dashboard.js 200',
      '/loopsight/dashboard.css 200',
      '/loopsight/nothing 404',
      'feed 200',
      '503 maxClients 503',
      '403 403',
      ...(framework.name !== 'fastify' ? ['405 405'] : []),
      '503 stopped 503',
    ]);
    for (const [what, res] of seen) expect(res.headers, what).toMatchObject(DOCUMENTED_HEADERS);
  });

  it('drops clients that never read after feedSeconds: 10 of them do not lock out an 11th', { timeout: 20_000 }, async ({
    onTestFinished,
  }) => {
    const app = await framework.start(quiet, { feedSeconds: 2 });
    onTestFinished(() => app.close());
    const url = `${app.url}/loopsight/events`;
    const stuck = await Promise.all(Array.from({ length: 10 }, () => nonReader(url)));
    try {
      // All ten slots are held: the operator is refused for now...
      expect((await get(url)).status).toBe(503);
      // ...and served once feedSeconds (2 s, plus the tick that ends them: at most 1 s) are up.
      await sleep(3_500);
      const operator = await openFeed(url);
      await operator.next('snapshot');
      operator.close();
    } finally {
      for (const socket of stuck) socket.destroy();
    }
  });

  it("ends a reading page's stream after feedSeconds with a bye, so it reconnects at once", { timeout: 10_000 }, async ({
    onTestFinished,
  }) => {
    const app = await framework.start(quiet, { feedSeconds: 1 });
    onTestFinished(() => app.close());
    const feed = await openFeed(`${app.url}/loopsight/events`);
    await feed.next('snapshot');
    await feed.next('bye', 3_000);
    await expect(Promise.race([feed.ended.then(() => 'ended'), sleep(2_000).then(() => 'open')])).resolves.toBe('ended');
  });
});

describe('allowedHosts', () => {
  it('adds names the default authorize accepts', async () => {
    const app = await express.start(quiet, { allowedHosts: ['myapp.test', '.dev.example'] });
    try {
      for (const [host, status] of [
        ['myapp.test:8080', 200],
        ['a.dev.example', 200],
        ['dev.example', 200],
        ['evil.example', 403],
        ['myapp.test.evil.example', 403],
      ] as const) {
        expect((await get(`${app.url}/loopsight`, { host })).status, host).toBe(status);
      }
    } finally {
      await app.close();
    }
  });
  it.each([
    [{ allowedHosts: 'myapp.test' }, /options\.allowedHosts must be an array/],
    [{ allowedHosts: ['http://myapp.test'] }, /options\.allowedHosts\[0\] must be a host name/],
    [{ allowedHosts: ['myapp.test:80'] }, /options\.allowedHosts\[0\] must be a host name/],
    [{ allowedHosts: ['myapp.test'], authorize: () => true }, /allowedHosts applies to the default authorize only/],
    [{ feedSeconds: 0 }, /options\.feedSeconds must be a positive integer up to 3600/],
  ])('%j throws a TypeError naming it', (options, message) => {
    expect(() => createDashboard(createMonitor(), options as never)).toThrow(message);
  });
});
