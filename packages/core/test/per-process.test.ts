import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createMonitor, type Monitor, type StallReport } from '@loopsight/core';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { frameworks, type TestApp } from '../../../test-support/apps.js';
import { blockTheLoop } from '../../../test-support/blockers.js';
import { runNode } from '../../../test-support/child.js';
import { ahead } from '../../../test-support/lanes.js';
import { until } from '../../../test-support/until.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fixture = (name: string) => fileURLToPath(new URL(`../../../test-support/fixtures/${name}`, import.meta.url));

function threads(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Threads:'));
  return Number.parseInt(line?.split(/\s+/)[1] ?? '0', 10);
}

/** Every stall report delivered in this process, whichever monitor it went to. */
function publishedStalls(): { reports: StallReport[]; close(): void } {
  const reports: StallReport[] = [];
  const onStall = (report: unknown) => reports.push(report as StallReport);
  diagnosticsChannel.subscribe('loopsight:stall', onStall);
  return { reports, close: () => diagnosticsChannel.unsubscribe('loopsight:stall', onStall) };
}

const quiet = { onReport: () => {} };
const byName = (name: string) => frameworks.find((f) => f.name === name) as (typeof frameworks)[number];

const open: { apps: TestApp[]; monitors: Monitor[] } = { apps: [], monitors: [] };
afterEach(async () => {
  await Promise.all(open.apps.splice(0).map((a) => a.close()));
  await Promise.all(open.monitors.splice(0).map((m) => m.stop()));
});

describe('one loopsight per process', () => {
  it('reports a stall once, to the monitor of the app whose request blocked, while another app serves requests', async () => {
    const blocking = await byName('express 5').start(quiet);
    const other = await byName('fastify 5').start(quiet);
    open.apps.push(blocking, other);
    const seen = publishedStalls();
    const toBlocking: StallReport[] = [];
    const toOther: StallReport[] = [];
    blocking.monitor.on('stall', (r) => toBlocking.push(r));
    other.monitor.on('stall', (r) => toOther.push(r));
    try {
      // The other app has a request in flight (a 300 ms timer) for the whole of the block.
      const waiting = request(`${other.url}/late`, { headers: { 'x-request-id': 'other-1' } }).then((r) => r.body.json());
      await sleep(20);
      const res = await request(`${blocking.url}/block/350`, { headers: { 'x-request-id': 'blocker-1' } });
      await res.body.json();
      await waiting;
      await until(() => seen.reports.length > 0);
      await sleep(300);
    } finally {
      seen.close();
    }
    // The block's report, not a stall a loaded machine adds on its own (the first requests' compiles, GC).
    const names = (r: StallReport, id: string) => [r.request, ...(r.candidates ?? [])].some((s) => s?.correlationId === id);
    const blocks = (list: StallReport[]) => list.filter((r) => names(r, 'blocker-1'));
    expect(blocks(seen.reports), JSON.stringify(seen.reports)).toHaveLength(1);
    expect(blocks(toOther)).toHaveLength(0);
    expect(blocks(toBlocking)).toHaveLength(1);
    expect(blocks(toBlocking)[0]?.request).toMatchObject({ correlationId: 'blocker-1', route: '/block/:ms' });
    expect(blocks(toBlocking)[0]?.stack.some((f) => f.functionName === 'blockTheLoop')).toBe(true);
  });

  it('runs the watchdog at the lowest threshold and gives each monitor only the stalls its own threshold asks for', async () => {
    const low = createMonitor({ ...quiet, loopLag: { stallThresholdMs: 100 } });
    // 250 ms blocks against a 700 ms threshold: on a loaded machine a block is timed up to a few
    // hundred ms longer than it ran (the thread was off the CPU around it; seen: 250 ms over 400).
    const high = createMonitor({ ...quiet, loopLag: { stallThresholdMs: 700 } });
    open.monitors.push(low, high);
    low.start();
    high.start();
    await sleep(300);
    const toLow: StallReport[] = [];
    const toHigh: StallReport[] = [];
    low.on('stall', (r) => toLow.push(r));
    high.on('stall', (r) => toHigh.push(r));
    const seen = publishedStalls();
    try {
      low.run({ correlationId: 'low-250' }, () => blockTheLoop(250));
      await until(() => toLow.some((r) => r.request !== undefined));
      high.run({ correlationId: 'high-250' }, () => blockTheLoop(250));
      await sleep(500);
      high.run({ correlationId: 'high-1000' }, () => blockTheLoop(1_000));
      await until(() => toHigh.some((r) => r.request !== undefined));
      await sleep(200);
    } finally {
      seen.close();
    }
    // A loaded machine adds stalls of its own (no request): the blocks' reports are those naming one.
    const named = (reports: StallReport[]) => reports.filter((r) => r.request !== undefined).map((r) => r.request?.correlationId);
    expect(named(toLow)).toEqual(['low-250']);
    expect(named(toHigh)).toEqual(['high-1000']);
    // The 250 ms block in the high-threshold monitor's job went to nobody: it was not the low one's.
    expect(named(seen.reports)).toEqual(['low-250', 'high-1000']);
  });

  it('runs one promise tracker with the widest options; two different frameFilter functions are said once', async () => {
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m) };
    const sampled = createMonitor({ ...quiet, logger, promises: { mode: 'sampled', frameFilter: (url) => !url.startsWith('node:') } });
    const full = createMonitor({ ...quiet, logger, promises: { mode: 'full', frameFilter: (url) => !url.includes('node_modules') } });
    const third = createMonitor({ ...quiet, logger, promises: { mode: 'full', frameFilter: () => true } });
    open.monitors.push(sampled, full, third);
    for (const m of [sampled, full, third]) m.start();
    expect(full.counters().promises?.mode).toBe('full');
    expect(sampled.counters().promises?.mode).toBe('full');
    expect(warnings.filter((w) => w.includes('frameFilter'))).toHaveLength(1);
  });

  it('keeps the shared parts while any monitor runs, whatever the stop order, and lets them go after the last', async () => {
    // What earlier tests' apps started outlives them by 2 s.
    await sleep(2_500);
    const before = threads();
    const monitors = [0, 1, 2].map(() => createMonitor(quiet));
    for (const m of monitors) m.start();
    await sleep(300);
    const running = threads();
    // One watchdog thread for the three of them.
    expect(running - before).toBeLessThanOrEqual(2);
    expect(running).toBeGreaterThan(before);
    const [first, second, last] = monitors as [Monitor, Monitor, Monitor];
    await second.stop();
    await first.stop();
    expect(threads()).toBe(running);
    const toLast: StallReport[] = [];
    last.on('stall', (r) => toLast.push(r));
    last.run({ correlationId: 'still-watched' }, () => blockTheLoop(250));
    await until(() => toLast.length > 0);
    expect(toLast.map((r) => r.request?.correlationId)).toEqual(['still-watched']);
    await last.stop();
    // The last monitor, one the user created, stopped: the worker goes now.
    await until(() => threads() <= before, 1_000);
    expect(threads()).toBeLessThanOrEqual(before);
  });

  it("an app's monitor leaves the watchdog running for the next app's (an app per test), then lets it go", async () => {
    await sleep(2_500);
    const before = threads();
    const first = await byName('fastify 5').start(quiet);
    await sleep(300);
    const running = threads();
    expect(running).toBeGreaterThan(before);
    await first.close();
    const next = await byName('fastify 5').start(quiet);
    open.apps.push(next);
    await sleep(300);
    expect(threads()).toBe(running);
    const toNext: StallReport[] = [];
    next.monitor.on('stall', (r) => toNext.push(r));
    const res = await request(`${next.url}/block/250`, { headers: { 'x-request-id': 'next-1' } });
    await res.body.json();
    await until(() => toNext.length > 0);
    expect(toNext.map((r) => r.request?.correlationId)).toEqual(['next-1']);
    await next.close();
    open.apps.splice(0);
    await until(() => threads() <= before, 6_000);
    expect(threads()).toBeLessThanOrEqual(before);
  });

  it('the process exits on its own after the last monitor stops, in any stop order', async () => {
    for (const order of ['0,1,2', '2,0,1', '1,2,0']) {
      const started = Date.now();
      const child = await runNode([fixture('stop-order.mjs'), order], { timeoutMs: 15_000 });
      expect(child.stderr, `order ${order}`).toBe('');
      expect(child.code).toBe(0);
      // The block's stall reached the monitor left, once, naming its job unless a loaded machine
      // landed the pause late. Other stalls are the machine's own, ended before the block began.
      const { stalls } = JSON.parse(child.stdout) as { stalls: { seen: string; job: boolean }[] };
      const job = stalls.filter((s) => s.job);
      expect(job, `order ${order}: ${child.stdout}`).toHaveLength(1);
      expect(['job-of-the-last', 'late-pause'], `order ${order}: ${child.stdout}`).toContain(job[0]?.seen);
      expect(child.exitedAt - started).toBeLessThan(10_000);
    }
  });
});

describe('the ESM and CommonJS builds in one process', () => {
  it('share one watchdog thread, and a stall goes once to the monitor whose job blocked', async () => {
    const child = await runNode([fixture('dual-hub.mjs')], { timeoutMs: 15_000 });
    expect(child.code, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual({ added: 1, after: 0, seen: { esm: [], cjs: ['cjs-job'] }, distinctBuilds: true });
  });
});

describe('a thousand apps of each framework in one process', () => {
  interface ManyApps {
    hubSize?: number;
    threads: number;
    rssMb: number;
    heapTotalMb: number;
    objectsMb: number;
    idleCpuPercent: number;
    stalls: { durationMs: number; correlationId: string | null }[];
    byMonitor: Record<string, number>;
  }
  async function run(n: number, plain = false): Promise<ManyApps> {
    // glibc gives a thread that finds the arenas busy an arena of its own, and what the freed
    // apps leave in each stays resident: how many there are follows the machine's load, not the
    // process (RSS of identical runs here: 20 to 53 MB apart under CI's load). Two arenas, the
    // same for all four runs, make RSS the process's own (3 pairs: 16 to 19 MB apart, one app: 16).
    const child = await runNode(['--expose-gc', fixture('many-apps.mjs'), String(n), ...(plain ? ['plain'] : [])], {
      timeoutMs: 150_000,
      env: { ...process.env, MALLOC_ARENA_MAX: '2' },
    });
    expect(child.code, child.stderr).toBe(0);
    expect(child.stderr).not.toMatch(/MaxListenersExceeded|Inspector error/);
    return JSON.parse(child.stdout) as ManyApps;
  }

  it('costs what one app costs: threads, RSS and idle CPU; a 300 ms block is reported once, with its request', {
    timeout: 240_000,
  }, async () => {
    // All four at once (the two of one app mostly sleep): what each measures is its own, its
    // threads, its RSS and heap, its own CPU time while idle, its own stall.
    const scenario = ahead(4, {
      many: () => run(1000),
      manyPlain: () => run(1000, true),
      one: () => run(1),
      onePlain: () => run(1, true),
    });
    const [many, manyPlain, one, onePlain] = (await Promise.all(['many', 'manyPlain', 'one', 'onePlain'].map(scenario))) as [
      ManyApps,
      ManyApps,
      ManyApps,
      ManyApps,
    ];
    expect(many.threads).toBeLessThanOrEqual(one.threads + 1);
    // The 2,997 dropped apps' monitors went with them: the process knows the three kept apps' (and
    // at most a few whose last references V8 or Node's own caches still held at the last GC).
    expect(many.hubSize).toBeGreaterThanOrEqual(3);
    expect(many.hubSize).toBeLessThanOrEqual(6);
    // The heap's objects after GC: what loopsight keeps does not grow with the number of apps.
    const kept = (x: { objectsMb: number }, plain: { objectsMb: number }) => x.objectsMb - plain.objectsMb;
    expect(kept(many, manyPlain)).toBeLessThanOrEqual(kept(one, onePlain) + 5);
    // Memory outside the JavaScript heap (RSS less the heap V8 holds: what the heap keeps is
    // bounded above, and how much it holds on to after 3,000 apps follows GC timing, which a loaded
    // machine moves by tens of MB). The bound is what loopsight adds over the same apps without
    // it, beyond what it adds to one app (its watchdog thread: an isolate of 18 MB on Node 24 and
    // later). Node 24, two arenas: +14 to +17 MB over the plain 3,000 apps in three runs, +14 MB
    // over one plain app. A native leak of 15 KB per app would be +45 MB.
    const native = (x: ManyApps) => x.rssMb - x.heapTotalMb;
    const summary = JSON.stringify({ many, manyPlain, one, onePlain }, [
      'rssMb',
      'heapTotalMb',
      'objectsMb',
      'threads',
      'many',
      'manyPlain',
      'one',
      'onePlain',
    ]);
    const bound = Math.max(0, native(one) - native(onePlain)) + 40;
    let gap = native(many) - native(manyPlain);
    let again = '';
    if (gap > bound) {
      // Once in a while a loaded machine leaves tens of MB more in one run (+93 once on Node 26,
      // where three runs gave +14 to +19): the pair runs again, and a leak, which grows with the
      // number of apps every time, is over the bound in both.
      const [many2, manyPlain2] = (await Promise.all([run(1000), run(1000, true)])) as [ManyApps, ManyApps];
      gap = Math.min(gap, native(many2) - native(manyPlain2));
      again = ` then ${JSON.stringify({ many: many2, manyPlain: manyPlain2 }, ['rssMb', 'heapTotalMb', 'many', 'manyPlain'])}`;
    }
    expect(gap, summary + again).toBeLessThanOrEqual(bound);
    // Idle CPU over 5 s: identical runs of one configuration differ by up to 1.4 points on this
    // machine (1000 apps: 1.89 and 3.29 in two runs a minute apart), and a bound of 1.5 failed once
    // on a quiet machine; one monitor per app cost +11 points at 50 apps before they were shared, which
    // this bound still catches several times over.
    expect(many.idleCpuPercent).toBeLessThanOrEqual(one.idleCpuPercent + 3);
    for (const result of [one, many]) {
      // The stalls that name a request (a loaded machine, the runs beside this one, can add one with
      // none in flight): the block's, once.
      expect(result.stalls.filter((s) => s.correlationId !== null).map((s) => s.correlationId)).toEqual(['the-blocker']);
      expect(result.byMonitor).toEqual({ express: 0, koa: 1, fastify: 0 });
    }
  });
});
