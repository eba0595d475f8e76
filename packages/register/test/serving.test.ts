// The preload in NODE_OPTIONS, as the docs and Dockerfiles set it, under launchers (npm start, a node
// parent), under cluster, and its startup phase. Runs the built package (`pnpm build` first).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePortRun } from '../../../test-support/ports.js';
import { eventually } from '../../../test-support/until.js';
import { fixture, freePort, packageDir } from './helpers.js';

const preload = join(packageDir, 'dist/index.js');
const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LOOPSIGHT_') && k !== 'NODE_OPTIONS'));

interface Heard {
  phase: string | null;
  at: number;
  durationMs: number;
  pid: number;
}

/** The ordinary stalls (heard or written as report lines) that overlap the startup stall: its time counted twice. */
function overlapping(startup: Heard, others: { at: number; durationMs: number }[]) {
  return others.filter((o) => o.at < startup.at + startup.durationMs - 5 && o.at + o.durationMs > startup.at + 5);
}

interface Started {
  ready: Record<string, unknown>;
  lines: () => string[];
  heard: () => Heard[];
  /** Ends stdin; the whole process group is killed if it has not exited within 10 s. */
  close(): Promise<number | null>;
}

/** Starts `argv` in its own process group with the preload in NODE_OPTIONS; waits for its first stdout line. */
async function launch(argv: string[], env: Record<string, string>, cwd = packageDir): Promise<Started> {
  const child: ChildProcess = spawn(argv[0] as string, argv.slice(1), {
    cwd,
    detached: true,
    env: { ...clean, NODE_OPTIONS: `--import=${preload}`, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  let partial = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    stderr.push(...parts);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const kill = () => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // Gone already.
    }
  };
  const guard = setTimeout(kill, 60_000);
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line) as Record<string, unknown>);
    });
    void exited.then((code) => reject(new Error(`exited with ${code} before it served:\n${stderr.join('\n')}`)));
  });
  const heard = () => stderr.filter((l) => l.startsWith('{"heard"')).map((l) => JSON.parse(l) as Heard);
  return {
    ready,
    lines: () => [...stderr],
    heard,
    async close() {
      child.stdin?.end();
      const timer = setTimeout(kill, 10_000);
      const code = await exited;
      clearTimeout(timer);
      clearTimeout(guard);
      kill(); // anything the launcher left behind
      return code;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scrape(port: number): Promise<string | undefined> {
  try {
    const res = await request(`http://127.0.0.1:${port}/metrics`);
    return await res.body.text();
  } catch {
    return undefined;
  }
}

/** How many of a route's stalls lasted longer than `seconds` (a bound of the stall histogram). */
function stallsOver(text: string | undefined, route: string, seconds: number): number {
  let count = 0;
  let within = 0;
  for (const line of (text ?? '').split('\n')) {
    const m = /^loopsight_event_loop_stall_seconds_(count|bucket)\{([^}]*)\} (\d+)/.exec(line);
    if (!m?.[2]?.includes(`route="${route}"`)) continue;
    if (m[1] === 'count') count += Number(m[3]);
    else if (m[2].includes(`le="${seconds}"`)) within += Number(m[3]);
  }
  return count - within;
}

/** The stall counter's value for a route label, summed over `expected`; 0 when absent. */
function stalls(text: string | undefined, route: string): number {
  let sum = 0;
  for (const m of (text ?? '').matchAll(/^loopsight_event_loop_stalls_total\{route="([^"]+)",expected="[a-z]+"\} (\d+)/gm))
    if (m[1] === route) sum += Number(m[2]);
  return sum;
}

/** Waits for the startup stall on the metrics port: one, over 250 ms; resolves the scraped text. */
async function oneStartupStall(port: number): Promise<string> {
  const text = await eventually('the startup stall on the metrics port', async () => {
    const t = await scrape(port);
    return stalls(t, '__startup__') >= 1 ? t : undefined;
  });
  expect(stalls(text, '__startup__'), text).toBe(1);
  expect(stallsOver(text, '__startup__', 0.25), text).toBe(1);
  return text;
}

/**
 * Sends blocking requests to `url`, each on a connection of its own (a kept-alive one stays with one
 * cluster worker), until each of `ports` counts a stall of a request (route `__unrouted__`); returns
 * those counts. A stall while a watchdog's thread is still starting (a loaded machine can take
 * seconds) is timed without a request and counted under `__none__`: another block follows then.
 */
async function blockUntilCounted(url: string, ports: number[], attempts: number): Promise<number[]> {
  const count = () => Promise.all(ports.map(async (p) => scrape(p)));
  const ofRequests = (texts: (string | undefined)[]) => texts.map((t) => stalls(t, '__unrouted__'));
  const all = (texts: (string | undefined)[]) => texts.reduce((sum, t) => sum + stalls(t, '__unrouted__') + stalls(t, '__none__'), 0);
  let texts = await count();
  for (let i = 0; i < attempts && !ofRequests(texts).every((c) => c >= 1); i++) {
    const before = all(texts);
    await (await request(`${url}/block/300`, { reset: true })).body.text();
    texts = await eventually('the stall on a metrics port', async () => {
      const now = await count();
      return all(now) > before ? now : undefined;
    });
  }
  return ofRequests(texts);
}

/** Not a line the service's operator would read as trouble: reports and what the fixture heard only. */
const trouble = (lines: string[]) => lines.filter((l) => l !== '' && !l.startsWith('{') && !l.startsWith('>') && !/^\s*$/.test(l));

const scratch = mkdtempSync(join(tmpdir(), 'loopsight-launch-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the process that serves owns LOOPSIGHT_METRICS_PORT', () => {
  const launchers: [string, () => string[]][] = [
    [
      'npm start of a package.json',
      () => {
        writeFileSync(
          join(scratch, 'package.json'),
          JSON.stringify({ name: 'scratch-app', private: true, scripts: { start: `node ${JSON.stringify(fixture('serve.mjs'))}` } }),
        );
        return ['npm', 'start', '--silent'];
      },
    ],
    ['a node parent that spawns the service', () => [process.execPath, fixture('launcher.mjs')]],
  ];

  // The two launchers side by side: processes that mostly wait.
  it.concurrent.each(launchers)(
    'under %s: the service binds it and its stall is there; the launcher binds nothing',
    async (_name, argv) => {
      const port = await freePort();
      const app = await launch(argv(), { LOOPSIGHT_METRICS_PORT: String(port) }, scratch);
      try {
        const url = `http://127.0.0.1:${app.ready.port as number}`;
        const before = await eventually('the metrics port', () => scrape(port));
        expect(stalls(before, '__unrouted__')).toBe(0);
        // The monitor started at listen(): its watchdog thread takes a moment to come up, as after any start.
        await sleep(500);
        const [counted] = await blockUntilCounted(url, [port], 5);
        expect(counted).toBeGreaterThanOrEqual(1);
        const after = await scrape(port);
        // Served by the service itself: its own pid's stall, and no EADDRINUSE anywhere.
        expect(after).toContain('loopsight_event_loop_stall_seconds_bucket');
        expect(app.heard().some((h) => h.pid === app.ready.pid && h.phase === null && h.durationMs > 250)).toBe(true);
        expect(trouble(app.lines())).toEqual([]);
      } finally {
        expect(await app.close()).toBe(0);
      }
    },
  );

  it('under cluster with 2 workers: worker N serves on the port plus N; the primary binds nothing', async () => {
    // Workers bind the port plus their id: all three must be free.
    const port = await freePortRun(3);
    const app = await launch([process.execPath, fixture('cluster.mjs')], { LOOPSIGHT_METRICS_PORT: String(port) });
    try {
      expect([...(app.ready.workers as number[])].sort()).toEqual([1, 2]);
      const url = `http://127.0.0.1:${app.ready.port as number}`;
      await eventually('both workers’ metrics ports', async () =>
        (await scrape(port + 1)) && (await scrape(port + 2)) ? true : undefined,
      );
      await sleep(500);
      // No metrics there. (The port can answer all the same: freed again, it can be the one the
      // kernel hands the service's own listen(0), seen once in ten runs beside other tests.)
      expect((await scrape(port)) ?? '').not.toContain('loopsight_');
      // Blocking requests reach both workers: the primary hands out connections round-robin. Each
      // worker's stalls are counted on its own port.
      const counts = await blockUntilCounted(url, [port + 1, port + 2], 12);
      expect(
        counts.every((c) => c >= 1),
        JSON.stringify(counts),
      ).toBe(true);
      expect(trouble(app.lines())).toEqual([]);
    } finally {
      expect(await app.close()).toBe(0);
    }
  });
});

describe('startup stalls under the preload', () => {
  it("the module-loading stall is phase 'startup', counted under __startup__ and writes no report line; a stall after listen is not", async () => {
    const port = await freePort();
    const app = await launch([process.execPath, fixture('serve.mjs'), '400', 'early'], { LOOPSIGHT_METRICS_PORT: String(port) });
    try {
      const url = `http://127.0.0.1:${app.ready.port as number}`;
      const startup = await eventually('the startup stall', async () => app.heard().find((h) => h.durationMs > 300));
      expect(startup.phase).toBe('startup');
      await blockUntilCounted(url, [port], 5);
      const later = await eventually('the stall after listen', async () => app.heard().find((h) => h.phase === null && h.durationMs > 250));
      expect(later.phase).toBeNull();
      const text = await eventually('both stalls on the metrics port', async () => {
        const t = await scrape(port);
        return stalls(t, '__unrouted__') >= 1 && stalls(t, '__startup__') >= 1 ? t : undefined;
      });
      expect(stalls(text, '__startup__')).toBeGreaterThanOrEqual(1);
      // The default report line: the stall after listen only.
      const reports = app.lines().filter((l) => l.startsWith('{"loopsight":"stall"'));
      expect(reports.length).toBeGreaterThanOrEqual(1);
      expect(reports.every((l) => !l.includes('"phase"'))).toBe(true);
    } finally {
      expect(await app.close()).toBe(0);
    }
  });
});

describe('startup stalls before the monitor starts (it starts at the first listen)', () => {
  it('a 400 ms block of module loading, timed by the preload, is counted under __startup__ and writes no line', async () => {
    const port = await freePort();
    const app = await launch([process.execPath, fixture('serve.mjs'), '400'], { LOOPSIGHT_METRICS_PORT: String(port) });
    try {
      await oneStartupStall(port);
      // The block is not counted again after listen, nor written as a report line (every stall
      // after listen is): no ordinary stall covers its time. A loaded machine can add stalls of its
      // own after it (1 s with no request in flight, seen on Node 22 in CI), counted as any other.
      const startup = await eventually('the startup stall heard', async () => app.heard().find((h) => h.phase === 'startup'));
      expect(startup.durationMs).toBeGreaterThanOrEqual(350);
      const lines = app.lines().filter((l) => l.startsWith('{"loopsight":"stall"'));
      const reported = lines.map((l) => JSON.parse(l) as { at: number; durationMs: number });
      const ordinary = app.heard().filter((h) => h.phase === null);
      expect(overlapping(startup, [...ordinary, ...reported]), `${JSON.stringify(startup)}\n${lines.join('\n')}`).toEqual([]);
      expect(trouble(app.lines())).toEqual([]);
    } finally {
      expect(await app.close()).toBe(0);
    }
  });
});

describe('a startup stall that runs on past the first listen', () => {
  it('the part before the watchdog watched is counted under __startup__, the part it watched is its own', async () => {
    // 400 ms of module loading, then 600 ms in the listen callback: the monitor started at listen()
    // and its watchdog times the second block (when its thread is up in time, as it is on an idle
    // machine), the preload's startup timer the whole gap.
    const port = await freePort();
    const app = await launch([process.execPath, fixture('serve.mjs'), '400', 'late', '600'], { LOOPSIGHT_METRICS_PORT: String(port) });
    try {
      await oneStartupStall(port);
      // What the watchdog timed after listen is not counted a second time as the startup's.
      const heard = app.heard();
      const startup = heard.filter((h) => h.phase === 'startup');
      expect(startup, JSON.stringify(heard)).toHaveLength(1);
      expect(
        overlapping(
          startup[0] as Heard,
          heard.filter((h) => h.phase === null),
        ),
        JSON.stringify(heard),
      ).toEqual([]);
      expect(trouble(app.lines())).toEqual([]);
    } finally {
      expect(await app.close()).toBe(0);
    }
  });
});
