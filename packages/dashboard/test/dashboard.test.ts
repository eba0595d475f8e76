import { createMonitor, type Monitor, type StallReport } from '@loopsight/core';
import { internals } from '@loopsight/core/internal';
import { createDashboard } from '@loopsight/dashboard';
import { afterEach, describe, expect, it } from 'vitest';
import { type DashboardApp, frameworks } from './apps.js';

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

describe('the dashboard over HTTP (Express)', () => {
  let app: DashboardApp | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('serves the page, its script and styles to loopback clients by default, with a strict CSP', async () => {
    app = await express.start(quiet, {});
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

  it('answers only under its path and leaves everything else to the app', async () => {
    app = await express.start(quiet, { path: '/ops/loop' });
    expect((await fetch(`${app.url}/loopsight`)).status).toBe(404);
    expect((await fetch(`${app.url}/ops/loopx`)).status).toBe(404);
    await expect((await fetch(`${app.url}/ops/loop/nothing`)).text()).resolves.toBe('Not Found\n');
    expect((await fetch(`${app.url}/ops/loop`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${app.url}/ops/loop?x=1`)).status).toBe(200);
    const blocked = await fetch(`${app.url}/block/1`, { headers: { 'x-request-id': 'pass-1' } });
    expect(await blocked.json()).toMatchObject({ id: 'pass-1' });
  });

  it('refuses every path with 403 when authorize says no, throws or rejects', async () => {
    let answer: () => boolean | Promise<boolean> = () => false;
    app = await express.start(quiet, { authorize: () => answer() });
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

  it('sends a snapshot, then a tick a second and each report as it comes, bounded', async () => {
    app = await express.start(quiet, { maxReports: 3 });
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
      const live = (await feed.next('stall')) as { request: { id: string }; culprit: { fn: string } };
      expect(live.request.id).toHaveLength(301);
      expect(live.culprit.fn).toBe('renderInvoice');
    } finally {
      feed.close();
    }
  });

  it('lists requests in flight oldest first, without its own feeds', async () => {
    app = await express.start(quiet, {});
    const feed = await openFeed(`${app.url}/loopsight/events`);
    const waiting = fetch(`${app.url}/orders/7/wait/2500`, { headers: { 'x-request-id': 'wait-7' } });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const later = fetch(`${app.url}/orders/8/wait/2000`, { headers: { 'x-request-id': 'wait-8' } });
      await feed.next('tick');
      const tick = (await feed.next('tick')) as { inflight: { total: number; oldest: { id: string; route: string }[] } };
      expect(tick.inflight.oldest.map((s) => s.id)).toEqual(['wait-7', 'wait-8']);
      expect(tick.inflight.total).toBe(2);
      await later;
    } finally {
      feed.close();
      await waiting;
    }
  });

  it('reads nothing while no page is open, and refuses feeds past maxClients', async () => {
    app = await express.start(quiet, { maxClients: 1 });
    // Counts the dashboard's reads of the real monitor: its tick is the only one that reads loop stats here.
    const monitor = app.monitor;
    const loopStats = monitor.loopStats.bind(monitor);
    let reads = 0;
    monitor.loopStats = () => {
      reads++;
      return loopStats();
    };
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await sleep(1_500);
    expect(reads).toBe(0);
    const feed = await openFeed(`${app.url}/loopsight/events`);
    await feed.next('snapshot');
    await feed.next('tick');
    expect(reads).toBeGreaterThanOrEqual(2);
    const second = await fetch(`${app.url}/loopsight/events`);
    expect(second.status).toBe(503);
    feed.close();
    await sleep(300);
    const after = reads;
    await sleep(1_500);
    expect(reads).toBe(after);
  });

  it('ends its feeds when the monitor stops', async () => {
    app = await express.start(quiet, {});
    const feed = await openFeed(`${app.url}/loopsight/events`);
    await feed.next('snapshot');
    await app.monitor.stop();
    await expect(Promise.race([feed.ended.then(() => 'ended'), new Promise((r) => setTimeout(() => r('open'), 2_000))])).resolves.toBe(
      'ended',
    );
    expect((await fetch(`${app.url}/loopsight/events`)).status).toBe(503);
  });
});
