import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/serve-built.cjs', import.meta.url));

// Runs the built package: `pnpm test` builds first.
describe('the built package', () => {
  for (const format of ['esm', 'cjs']) {
    it(`serves the page and its bundled files from the ${format} build`, () => {
      const child = spawnSync(process.execPath, [fixture, format], { encoding: 'utf8', timeout: 15_000 });
      expect(child.error).toBeUndefined();
      expect(child.stderr).toBe('');
      const sizes = JSON.parse(child.stdout) as Record<string, number>;
      expect(sizes['/']).toBeGreaterThan(300);
      // uPlot is about 50 kB of the script.
      expect(sizes['/dashboard.js']).toBeGreaterThan(40_000);
      expect(sizes['/dashboard.css']).toBeGreaterThan(1_000);
    });
  }
});
