import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StackFrame, StallReport } from '@loopsight/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode } from '../../../test-support/child.js';
import { limit } from '../../../test-support/limit.js';

// A source map named by code is a file loopsight opens: docs/loop-lag.md, "Safety guarantees".
// Each scenario runs fixtures/hostile-map.mjs against core's build, in a child process killed at a
// timeout (a read that blocks or never ends fails the test instead of hanging it).
const fixture = fileURLToPath(new URL('./fixtures/hostile-map.mjs', import.meta.url));
const ENV_SENTINEL = 'env-sentinel-7f3a9c';
const BIG_SENTINEL = 'big-sentinel-91c2e4';

let dir: string;
let run = 0;
const files: Record<string, { target: () => string; sentinel: string }> = {
  '/dev/zero': { target: () => '/dev/zero', sentinel: '\\u0000' },
  'a FIFO no one writes': { target: () => join(dir, 'fifo.map'), sentinel: 'never-written' },
  '/proc/self/environ': { target: () => '/proc/self/environ', sentinel: ENV_SENTINEL },
  '/etc/passwd': { target: () => '/etc/passwd', sentinel: 'root:x:0:0' },
  'a 100 MB file (sparse)': { target: () => join(dir, 'big.js.map'), sentinel: BIG_SENTINEL },
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'loopsight-hostile-'));
  execFileSync('mkfifo', [join(dir, 'fifo.map')]);
  // Starts like a source map, so only its size can refuse it.
  const fd = openSync(join(dir, 'big.js.map'), 'w');
  writeSync(fd, `{"version":3,"sources":["${BIG_SENTINEL}.ts"],"mappings":"AAAA","x":"`);
  writeSync(fd, '"}', 100 * 1024 * 1024 - 2);
  closeSync(fd);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  stdout: string;
  stderr: string;
  exitedAt: number;
  reports: StallReport[];
  mapped: StackFrame[];
  rssGrowthMb: number;
  exitAt: number;
}

// Two scenarios at a time: each mostly waits for its watchdog and its block.
const turn = limit(2);

async function scenario(target: string, mode: 'evaluated' | 'on-disk', timeoutMs = 20_000): Promise<Result> {
  const workDir = join(dir, `run-${run++}`);
  mkdirSync(workDir);
  const env = { ...process.env, LOOPSIGHT_TEST_SECRET: ENV_SENTINEL };
  const { stdout, stderr, exitedAt, events } = await turn(() =>
    runNode([fixture, JSON.stringify({ target, dir: workDir, mode })], { env, timeoutMs }),
  );
  const result = events.find((e) => e.event === 'result') ?? {};
  const exit = events.find((e) => e.event === 'exit') ?? {};
  return {
    stdout,
    stderr,
    exitedAt,
    exitAt: (exit.at as number) ?? Number.NaN,
    reports: [],
    mapped: [],
    rssGrowthMb: Number.NaN,
    ...result,
  };
}

function expectSafe(r: Result, sentinel: string): void {
  const all = `${r.stdout}\n${r.stderr}`;
  const report = r.reports.find((x) => x.request?.correlationId === 'hostile-1');
  expect(report, all).toBeDefined();
  expect(report?.durationMs).toBeGreaterThanOrEqual(250);
  expect(['pause', 'late-pause']).toContain(report?.stackSource);
  expect(report?.stack.map((f) => f.functionName)).toContain('ruleBlock');
  // Nothing mapped through it: the frames are the code that ran.
  expect(report?.stack.find((f) => f.functionName === 'ruleBlock')?.generated).toBeUndefined();
  expect(r.mapped[0]?.generated).toBeUndefined();
  expect(r.rssGrowthMb, all).toBeLessThan(50);
  expect(all).not.toContain(sentinel);
  expect(all).not.toContain('\u0000');
  // Ends at process.exit(): nothing of loopsight holds it.
  expect(r.exitedAt - r.exitAt, all).toBeLessThan(1000);
}

// Concurrent, two processes at a time (turn): the timeout covers the turns before a test's own.
describe.concurrent.each(Object.entries(files))('sourceMappingURL at %s', (_name, { target, sentinel }) => {
  it('in code the app evaluates (new Function, //# sourceURL): the stall is reported with its stack, RSS < +50 MB, nothing of the file is shown, exit within 1 s', {
    timeout: 120_000,
  }, async () => {
    expectSafe(await scenario(target(), 'evaluated'), sentinel);
  });

  it('named by a module file on disk, through a link ending in .map: the same', { timeout: 120_000 }, async () => {
    expectSafe(await scenario(target(), 'on-disk'), sentinel);
  });
});

it.concurrent('sourceMappingURL at a ../ path out of the script directory, in code the app evaluates: the same', {
  timeout: 120_000,
}, async () => {
  expectSafe(await scenario('../../../../../../../../../../etc/passwd', 'evaluated'), 'root:x:0:0');
});
