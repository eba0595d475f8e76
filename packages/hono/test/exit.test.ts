import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('../../../test-support/fixtures/serve-once.mjs', import.meta.url));

// Runs the built package: `pnpm test` builds first.
describe('a process with @loopsight/hono loaded', () => {
  it('exits on its own after serving one request on @hono/node-server', () => {
    const child = spawnSync(process.execPath, [fixture, 'hono'], { encoding: 'utf8', timeout: 15_000 });
    expect(child.error, 'the process had to be killed: something kept it alive').toBeUndefined();
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual({ status: 200, echoed: 'exit-1', body: { viaFetch: 'exit-1', viaHttp: 'exit-1' } });
  });
});
