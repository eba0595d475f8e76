import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Runs the built package: `pnpm test` builds first.
describe('unhandled rejections outside a sampling window', () => {
  it('are suppressed by creation site, not by message: 10,000 distinct messages from one site give one report', () => {
    const fixture = fileURLToPath(new URL('./fixtures/unhandled-flood.mjs', import.meta.url));
    const child = spawnSync(process.execPath, [fixture], { encoding: 'utf8', timeout: 30_000 });
    expect(child.status, child.stderr).toBe(0);
    const { reports, stats } = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}');
    // One for the flooding site, one for the other: the flood did not push it out of the site map.
    expect(reports).toHaveLength(2);
    expect(reports[0]).toMatchObject({ kind: 'unhandled', reason: 'Error: bad input 0', top: { functionName: 'validateInput' } });
    expect(reports[0].top.url).toMatch(/unhandled-flood\.mjs$/);
    expect(reports[1]).toMatchObject({ kind: 'unhandled', reason: 'TypeError: something else', top: { functionName: 'other' } });
    expect(stats.reported.unhandled).toBe(2);
    expect(stats.suppressed.unhandled).toBe(9_999);
  });
});
