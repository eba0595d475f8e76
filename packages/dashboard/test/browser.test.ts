// The page in a real browser: Debian's chromium driven by playwright-core, on Express, Fastify and
// Koa. Skipped, saying why, when chromium is not installed; in CI (CI=true) a missing browser fails.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StallReport } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slowClient } from '../../../test-support/backpressure.js';
import { type DashboardApp, frameworks } from './apps.js';

const CHROMIUM = '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
if (!present && process.env.CI === 'true') {
  throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium package; the dashboard's browser test must run in CI`);
}
if (!present) console.warn(`dashboard browser test skipped: ${CHROMIUM} is not installed (apt-get install chromium)`);

const root = fileURLToPath(new URL('../../../', import.meta.url));
const TOKEN = 'test-token-6c1f';
const UPDATE_SCREENSHOT = process.env.UPDATE_SCREENSHOT === '1';
// No spaces: core refuses any id outside visible ASCII, whatever the validator says; '/' separates
// the attributes as well as a space would.
const HOSTILE_ID = '<img/src=x/onerror=alert(1)>';

// A custom validator that lets markup through, so that the page, not the id check, is what is tested.
const printable = (id: string) => id.length <= 128 && /^[\x21-\x7e]+$/.test(id);

async function launch(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'loopsight-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    // Without the background-networking flags the closed network refuses many connections.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 1000 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Waits for an item to show; on a timeout, says what the list showed instead. */
async function appears(item: Locator, list: Locator, timeout: number): Promise<void> {
  try {
    await item.waitFor({ timeout });
  } catch (error) {
    const shown = (await list.allTextContents()).join('\n  ');
    throw new Error(`${(error as Error).message}\nthe list showed:\n  ${shown}`);
  }
}

const chartData = (page: Page, key: 'points' | 'gaps' | 'peakMs') =>
  page.locator('#delay-chart').evaluate((el, k) => Number((el as HTMLElement).dataset[k] ?? 0), key);
const points = (page: Page) => chartData(page, 'points');

describe.skipIf(!present)('the dashboard in chromium', () => {
  let browser: Awaited<ReturnType<typeof launch>>;
  beforeAll(async () => {
    browser = await launch();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  // What the page shows (charts, gaps, reasons, the in-flight list, hostile ids, reconnections) is
  // the page's and the feed's, the same on every framework: Express runs it all. Fastify and Koa
  // check what their adapters do: serve the page and its feed (live, new chart points), name the
  // route and id of a stall and a floating promise, answer 403 when authorize says no, and no
  // console error; dashboard.test.ts covers their headers, Host checks and stream ends over HTTP.
  for (const framework of frameworks) {
    const deep = framework.name === 'express';
    describe(framework.name, () => {
      let app: DashboardApp;
      let page: Page;
      const consoleErrors: string[] = [];
      const dialogs: string[] = [];

      beforeAll(async () => {
        app = await framework.start(
          {
            // The three apps share the process's watchdog: its default of 10 stacks a minute would
            // leave the later apps' stalls without a stack, so without a request.
            loopLag: { windowMs: 1000, maxStacksPerMinute: 1000 },
            promises: { mode: 'full' },
            correlation: { validate: printable },
            onReport: () => {},
          },
          // Short streams: every test below also runs across the page's reconnections.
          { authorize: (req) => req.headers['x-dashboard-token'] === TOKEN, feedSeconds: 2 },
        );
        page = await browser.context.newPage();
        await page.setExtraHTTPHeaders({ 'x-dashboard-token': TOKEN });
        page.on('console', (message) => {
          if (message.type() === 'error') consoleErrors.push(message.text());
        });
        page.on('pageerror', (error) => consoleErrors.push(String(error)));
        page.on('dialog', (dialog) => {
          dialogs.push(dialog.message());
          void dialog.dismiss();
        });
      });
      afterAll(async () => {
        await page?.close();
        await app?.close();
      });

      // The page is not open yet: the dashboard records its chart points anyway.
      if (deep)
        it('charts a stall that happened while no page was open', { retry: 2 }, async () => {
          // A retry closes the page the failed attempt opened.
          await page.goto('about:blank');
          expect(browser.context.pages().some((p) => p.url().startsWith(app.url))).toBe(false);
          const res = await fetch(`${app.url}/block/400`, { headers: { 'x-request-id': `unseen-${framework.name}` } });
          expect(res.status).toBe(200);
          // The 1 s stats window that holds the block completes, and a tick records it.
          await new Promise((resolve) => setTimeout(resolve, 2_500));
          await page.goto(`${app.url}/loopsight`);
          await page.locator('.status.live').waitFor({ timeout: 5_000 });
          expect(await points(page)).toBeGreaterThanOrEqual(3);
          expect(await chartData(page, 'peakMs')).toBeGreaterThanOrEqual(300);
          await page.locator('#stalls li.report', { hasText: `unseen-${framework.name}` }).waitFor({ timeout: 3_000 });
        });

      it('loads, and the delay chart gets new points within 3 s', async () => {
        const response = await page.goto(`${app.url}/loopsight`);
        expect(response?.status()).toBe(200);
        await page.locator('.status.live').waitFor({ timeout: 5_000 });
        const before = await points(page);
        expect(before).toBeGreaterThan(0);
        await page.waitForFunction((n) => Number(document.querySelector<HTMLElement>('#delay-chart')?.dataset.points ?? 0) > n, before, {
          timeout: 3_000,
        });
        // uPlot drew into a canvas.
        expect(await page.locator('#delay-chart canvas').count()).toBeGreaterThan(0);
      });

      // A retry for the watchdog, not for the page: on a loaded machine a pause can land late, and a
      // late pause is rightly left without a request (docs/loop-lag.md).
      it('shows a stall within 3 s, with its culprit, route and id', { retry: 2 }, async () => {
        const id = `stall-${framework.name}-${Math.random().toString(36).slice(2, 8)}`;
        const res = await fetch(`${app.url}/block/350`, { headers: { 'x-request-id': id } });
        expect(res.status).toBe(200);
        const item = page.locator('#stalls li.report', { hasText: id });
        await appears(item, page.locator('#stalls li.report summary'), 3_000);
        await expect(item.locator('.culprit').textContent()).resolves.toContain('blockTheLoop');
        await expect(item.locator('.route').textContent()).resolves.toBe('GET /block/:ms');
        await expect(item.locator('.cid').textContent()).resolves.toBe(id);
        // The stack opens on a click.
        await item.locator('summary').click();
        await expect(item.locator('ol.stack').isVisible()).resolves.toBe(true);
        await expect(item.locator('ol.stack .culprit-frame').first().textContent()).resolves.toContain('blockers.ts');
      });

      it('shows a floating promise', async () => {
        const id = `float-${framework.name}-1`;
        const res = await fetch(`${app.url}/checkout`, { method: 'POST', headers: { 'x-request-id': id } });
        expect(res.status).toBe(202);
        const item = page.locator('#promises li.report', { hasText: id });
        await appears(item, page.locator('#promises li.report summary'), 5_000);
        await expect(item.locator('.kind').textContent()).resolves.toBe('floating');
        await expect(item.locator('.culprit').textContent()).resolves.toContain('sendReceipt');
        await expect(item.locator('.route').textContent()).resolves.toBe('POST /checkout');
      });

      if (deep)
        it('shows a backpressure report and the bytes buffered now', async () => {
          const id = `export-${framework.name}`;
          const client = await slowClient(app.url, '/export/csv', { 'x-request-id': id });
          try {
            const item = page.locator('#backpressure li.report', { hasText: id });
            await appears(item, page.locator('#backpressure li.report summary'), 5_000);
            await expect(item.locator('.kind').textContent()).resolves.toBe('ignored');
            await expect(item.locator('.route').textContent()).resolves.toBe('GET /export/:format');
            await expect(item.locator('.culprit').textContent()).resolves.toContain('writeIgnoring');
            // While the slow client holds the response, the panel shows its buffer (ticks every second).
            await page.waitForFunction(
              () => Number(document.querySelector<HTMLElement>('#buffered-now')?.dataset.bytes ?? 0) > 1_048_576,
              undefined,
              {
                timeout: 3_000,
              },
            );
            await expect(page.locator('#buffered-now').textContent()).resolves.toMatch(
              /^Buffered now: [\d.]+ MiB by 1 writer waiting for 'drain'$/,
            );
          } finally {
            client.destroy();
          }
          await page.waitForFunction(() => document.querySelector<HTMLElement>('#buffered-now')?.dataset.bytes === '0', undefined, {
            timeout: 3_000,
          });
        });

      if (deep)
        it('shows a hostile correlation id as text and runs nothing', { retry: 2 }, async () => {
          const res = await fetch(`${app.url}/block/350`, { headers: { 'x-request-id': HOSTILE_ID } });
          expect(res.headers.get('x-request-id')).toBe(HOSTILE_ID);
          const item = page.locator('#stalls li.report', { hasText: HOSTILE_ID });
          await appears(item, page.locator('#stalls li.report summary'), 3_000);
          await expect(item.locator('.cid').textContent()).resolves.toBe(HOSTILE_ID);
          expect(await page.locator('main img').count()).toBe(0);
          // An onerror handler would have run by now.
          await page.waitForTimeout(300);
          expect(dialogs).toEqual([]);
        });

      if (deep)
        it('shows requests in flight, oldest first', { timeout: 90_000 }, async () => {
          const picture = framework.name === 'express';
          // The checked-in picture gets a minute of chart first.
          if (picture && UPDATE_SCREENSHOT)
            await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('#delay-chart')?.dataset.points) >= 60, undefined, {
              timeout: 80_000,
            });
          const waiting = [1, 2].map((n) => fetch(`${app.url}/orders/${n}/wait/4000`, { headers: { 'x-request-id': `wait-${n}` } }));
          await page.locator('#inflight tr', { hasText: 'wait-1' }).waitFor({ timeout: 3_000 });
          await page.locator('#inflight tr', { hasText: 'wait-2' }).waitFor({ timeout: 3_000 });
          const rows = await page.locator('#inflight tr').allTextContents();
          const routes = rows.filter((r) => r.includes('wait-'));
          expect(routes[0]).toContain('GET /orders/:id/wait/:ms');
          // The page's own feed is not listed.
          expect(rows.join('\n')).not.toContain('/loopsight');
          if (picture) await screenshot(page);
          await Promise.all(waiting);
        });

      if (deep)
        it('breaks the chart lines across a gap instead of joining the points', { timeout: 20_000 }, async () => {
          const gaps = await chartData(page, 'gaps');
          const before = await points(page);
          // 4 s of blocking: no point can be taken in between.
          await fetch(`${app.url}/block/4000`);
          await page.waitForFunction(
            (n) => Number(document.querySelector<HTMLElement>('#delay-chart')?.dataset.points ?? 0) > n + 1,
            before,
            {
              timeout: 5_000,
            },
          );
          expect(await chartData(page, 'gaps')).toBe(gaps + 1);
        });

      if (deep)
        it('says why a stall has no culprit and no request', async () => {
          const report: StallReport = {
            type: 'stall',
            durationMs: 321,
            at: Date.now(),
            stack: [],
            stackSource: 'none',
            stackSkipped: 'unavailable',
            debuggerAttached: true,
            inflight: 0,
          };
          internals(app.monitor).report(report);
          const item = page.locator('#stalls li.report', { hasText: '321 ms' });
          await appears(item, page.locator('#stalls li.report summary'), 3_000);
          await expect(item.locator('.culprit').textContent()).resolves.toBe('no culprit');
          const why = await item.locator('.why').textContent();
          expect(why).toContain('a debugger may be attached');
          expect(why).toContain('no request was running');
          expect(await item.locator('.why').isVisible()).toBe(true);
        });

      if (deep)
        it('stays live across the end of each stream (feedSeconds), keeping an opened stall open', { timeout: 20_000 }, async () => {
          const streams = () => page.evaluate(() => Number(document.body.dataset.streams ?? 0));
          const item = page.locator('#stalls li.report', { hasText: `unseen-${framework.name}` });
          await item.locator('summary').click();
          const before = await streams();
          await page.waitForFunction((n) => Number(document.body.dataset.streams ?? 0) >= n + 2, before, { timeout: 12_000 });
          expect(await streams()).toBeGreaterThanOrEqual(before + 2);
          await expect(item.locator('details').evaluate((d) => (d as HTMLDetailsElement).open)).resolves.toBe(true);
          await page.locator('.status.live').waitFor({ timeout: 2_000 });
        });

      it('is refused when authorize says no', async () => {
        const stranger = await browser.context.newPage();
        try {
          const response = await stranger.goto(`${app.url}/loopsight`);
          expect(response?.status()).toBe(403);
          await expect(stranger.locator('body').textContent()).resolves.not.toContain('loopsight');
        } finally {
          await stranger.close();
        }
        for (const path of ['/loopsight', '/loopsight/events', '/loopsight/dashboard.js']) {
          const res = await fetch(app.url + path);
          expect(res.status, path).toBe(403);
        }
      });

      it('logged no console error', () => {
        expect(consoleErrors).toEqual([]);
      });
    });
  }
});

/**
 * The README's picture. Written to .tmp/ on every run; with UPDATE_SCREENSHOT=1, to
 * docs/img/dashboard.png, which is checked in.
 */
async function screenshot(page: Page): Promise<void> {
  await page.waitForTimeout(1_000);
  const target = UPDATE_SCREENSHOT ? join(root, 'docs/img/dashboard.png') : join(root, '.tmp/dashboard.png');
  mkdirSync(join(target, '..'), { recursive: true });
  await page.screenshot({ path: target, fullPage: true });
}
