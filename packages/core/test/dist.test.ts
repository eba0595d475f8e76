import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('../../../test-support/fixtures/dual.mjs', import.meta.url));

// Runs the built packages: `pnpm test` builds first.
describe('the ESM and CommonJS builds', () => {
  it('share one scope store: an ESM app and its CommonJS dependency see the same id', () => {
    const child = spawnSync(process.execPath, [fixture], { encoding: 'utf8', timeout: 10_000 });
    expect(child.stderr).toBe('');
    expect(JSON.parse(child.stdout)).toEqual({
      seen: { cjsContext: 'dual-1', cjsCore: 'dual-1', nested: 'dual-2' },
      outside: null,
      distinctBuilds: true,
    });
  });
});
