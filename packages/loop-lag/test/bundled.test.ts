import { copyFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from '../../../test-support/child.js';

// The watchdog thread runs a script of its own (dist/watchdog-thread.{js,cjs}). An app bundled with
// loopsight inside has no such file beside it unless it is copied there (docs/loop-lag.md, "Bundled
// apps"): the app must still load and run, and stalls still be timed, warned once; with the file
// copied, stacks come back. esbuild is the bundler tsup builds this package with.
const esbuild = createRequire(createRequire(import.meta.url).resolve('tsup'))('esbuild') as typeof import('esbuild');
const APP = fileURLToPath(new URL('./fixtures/bundled-app.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/', import.meta.url));

describe.each([
  ['esm', 'bundle.mjs', 'watchdog-thread.js'],
  // The ESM build turned into CommonJS: import.meta is empty there, and must not be read at load.
  ['cjs', 'bundle.cjs', 'watchdog-thread.cjs'],
] as const)('an app bundled as %s with loopsight inside', (format, file, script) => {
  const dir = mkdtempSync(join(tmpdir(), 'loopsight-bundle-'));
  const bundle = join(dir, file);
  const built = esbuild.buildSync({ entryPoints: [APP], bundle: true, platform: 'node', format, outfile: bundle, logLevel: 'silent' });

  it('without the watchdog script beside it: loads, times the stall without a stack, says so once, exits', async () => {
    expect(built.errors).toEqual([]);
    const r = await runNode([bundle], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.events.filter((e) => e.event === 'warning')).toEqual([
      { event: 'warning', what: expect.stringContaining('stalls are now timed on the main thread'), code: 'LOOPSIGHT_WATCHDOG_LOST' },
    ]);
    // The block's stall, timed on the main thread; a loaded machine may add stalls of its own, stackless too.
    const stalls = r.events.filter((e) => e.event === 'stall');
    expect(stalls.filter((e) => (e.durationMs as number) >= 250).length, r.stdout).toBeGreaterThanOrEqual(1);
    expect(
      stalls.every((e) => e.stackSource === 'none'),
      r.stdout,
    ).toBe(true);
  });

  it('with it copied beside the bundle: the stall has its stack', async () => {
    copyFileSync(join(DIST, script), join(dir, script));
    const r = await runNode([bundle], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    // The block's stall names the bundle's function; a loaded machine may add stalls of its own.
    const stalls = r.events.filter((e) => e.event === 'stall' && e.top === 'blockInBundle');
    expect(stalls, r.stdout).toHaveLength(1);
    expect(['pause', 'late-pause']).toContain(stalls[0]?.stackSource);
    expect(r.events.find((e) => e.event === 'status')).toMatchObject({ status: { mode: 'worker', stacks: true } });
  });
});
