import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode } from '../../../test-support/child.js';
import { limit } from '../../../test-support/limit.js';
import { packageDir } from './helpers.js';

// LOOPSIGHT_CONFIG names a file the preload reads before the application starts, in every process
// that inherits NODE_OPTIONS: a regular file only, at most 64 KB, never blocking, and its contents
// never on stderr (docs/preload.md). Each case is a process killed at a timeout.
const SECRET = 'secret-token-5b7d1e';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'loopsight-config-'));
  execFileSync('mkfifo', [join(dir, 'fifo.json')]);
  mkdirSync(join(dir, 'a-directory.json'));
  const fd = openSync(join(dir, 'big.json'), 'w');
  writeSync(fd, `{"loopLag":{"stallThresholdMs":"${SECRET}"`);
  writeSync(fd, '}}', 50 * 1024 * 1024 - 2);
  closeSync(fd);
  writeFileSync(join(dir, 'not-json.json'), `token=${SECRET}\n`);
  writeFileSync(join(dir, 'bad-value.json'), JSON.stringify({ correlation: { header: `${SECRET.toUpperCase()} x` } }));
  writeFileSync(join(dir, 'bad-number.json'), JSON.stringify({ loopLag: { stallThresholdMs: SECRET } }));
  writeFileSync(join(dir, 'unknown-key.json'), JSON.stringify({ loopLag: { [SECRET]: 1 } }));
  writeFileSync(join(dir, 'good.json'), JSON.stringify({ loopLag: { stallThresholdMs: 250 } }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Started {
  /** ms from the process's start to the application's first line. */
  startedMs: number;
  /** stderr lines other than stall reports. */
  lines: string[];
  stderr: string;
}

// A service: the preload reads its options when the process first serves (a process that never
// serves loads nothing of loopsight, docs/preload.md), so the app listens, then ends.
const APP = [
  'process.stdout.write(JSON.stringify({ startedMs: performance.now() }) + "\\n");',
  'const server = require("node:http").createServer((q, s) => s.end());',
  'server.listen(0, "127.0.0.1", () => setTimeout(() => server.close(), 300));',
].join(' ');

async function start(config: string, timeoutMs = 15_000): Promise<Started> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LOOPSIGHT_') && key !== 'NODE_OPTIONS'));
  const env = { ...clean, LOOPSIGHT_CONFIG: config };
  const { stdout, stderr } = await runNode(['--import', '@loopsight/register', '-e', APP], { cwd: packageDir, env, timeoutMs });
  const lines = stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{"loopsight":'));
  return { startedMs: JSON.parse(stdout.split('\n')[0] || '{}').startedMs ?? Number.NaN, lines, stderr };
}

// One case at a time, its two processes (with and without the variable) side by side: a third
// process would load the machine unevenly between the two starts it compares.
const turn = limit(1);

describe('LOOPSIGHT_CONFIG at a file that is not a config', () => {
  it.concurrent.each([
    ['a FIFO no one writes', 'fifo.json', /ignored: it is not a regular file \[LOOPSIGHT_CONFIG_IGNORED\]$/],
    ['a device', '/dev/zero', /ignored: it is not a regular file \[LOOPSIGHT_CONFIG_IGNORED\]$/],
    ['a directory', 'a-directory.json', /ignored: it is not a regular file \[LOOPSIGHT_CONFIG_IGNORED\]$/],
    ['a 50 MB file', 'big.json', /ignored: the file is larger than 65536 bytes \[LOOPSIGHT_CONFIG_IGNORED\]$/],
    [
      '/proc/self/environ',
      '/proc/self/environ',
      /ignored: the file is empty, or its size is unknown \(\/proc\) \[LOOPSIGHT_CONFIG_IGNORED\]$/,
    ],
    ['a file that is not JSON', 'not-json.json', /ignored: the file is not valid JSON \[LOOPSIGHT_CONFIG_IGNORED\]$/],
    ['/etc/passwd', '/etc/passwd', /ignored: the file is not valid JSON \[LOOPSIGHT_CONFIG_IGNORED\]$/],
    [
      'a refused value',
      'bad-number.json',
      /ignored: options\.loopLag\.stallThresholdMs must be a positive number up to \d+ \[LOOPSIGHT_CONFIG_IGNORED\]$/,
    ],
    ['a refused string', 'bad-value.json', /ignored: options\.correlation\.header must be .+ \[LOOPSIGHT_CONFIG_IGNORED\]$/],
    [
      'an unknown option',
      'unknown-key.json',
      /ignored: the file has an option loopsight does not know \(accepted: .+\) \[LOOPSIGHT_CONFIG_IGNORED\]$/,
    ],
  ])(
    '%s: the app starts within 1 s, with one stderr line that quotes nothing of the file',
    async (_name, file, why) => {
      const path = file.startsWith('/') ? file : join(dir, file);
      // Against a start without the variable at the same moment: node and the preload alone take
      // seconds on a loaded machine.
      const [plain, r] = await turn(() => Promise.all([start(''), start(path)]));
      expect(r.startedMs - plain.startedMs, r.stderr).toBeLessThan(1000);
      expect(r.lines, r.stderr).toHaveLength(1);
      expect(r.lines[0]).toMatch(/^loopsight: LOOPSIGHT_CONFIG=".+" ignored: /);
      expect(r.lines[0]).toMatch(why);
      expect(r.stderr).not.toContain(SECRET);
      expect(r.stderr).not.toContain(SECRET.toUpperCase());
      expect(r.stderr).not.toContain('root:x');
    },
    90_000,
  );

  it('a good file is applied, without a line', async () => {
    const r = await start(join(dir, 'good.json'));
    expect(r.lines, r.stderr).toEqual([]);
    expect(r.startedMs).toBeGreaterThan(0);
  });
});
