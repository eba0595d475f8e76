import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { packageDir } from './helpers.js';

// Importing the package starts the preload: the surface is read in a child process, with
// LOOPSIGHT_ENABLED=false, from both builds.
function surface(code: string): unknown {
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: packageDir,
    encoding: 'utf8',
    env: { ...process.env, LOOPSIGHT_ENABLED: 'false', NODE_OPTIONS: '' },
  });
  expect(child.stderr).toBe('');
  return JSON.parse(child.stdout);
}

describe('@loopsight/register exports', () => {
  it('preloadMonitor only, from the ESM and the CommonJS build', () => {
    const keys = 'console.log(JSON.stringify(Object.keys(m).sort()))';
    expect(surface(`const m = await import('@loopsight/register'); ${keys}`)).toEqual(['preloadMonitor']);
    const cjs = `import { createRequire } from 'node:module'; const m = createRequire(process.cwd() + '/')('@loopsight/register'); ${keys}`;
    expect(surface(cjs)).toEqual(['preloadMonitor']);
  });

  it('preloadMonitor() is undefined when LOOPSIGHT_ENABLED=false', () => {
    expect(
      surface(`const { preloadMonitor } = await import('@loopsight/register'); console.log(JSON.stringify(preloadMonitor() ?? null))`),
    ).toBe(null);
  });
});
