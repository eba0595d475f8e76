import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('../../../test-support/fixtures/serve-once.mjs', import.meta.url));

// Runs the built packages: `pnpm test` builds first.
describe('a process with loopsight loaded', () => {
  for (const framework of ['express', 'fastify', 'koa']) {
    it(`exits on its own after serving one request (${framework})`, () => {
      const started = Date.now();
      const child = spawnSync(process.execPath, [fixture, framework], { encoding: 'utf8', timeout: 15_000 });
      expect(child.error, 'the process had to be killed: something kept it alive').toBeUndefined();
      expect(child.stderr).toBe('');
      expect(child.status).toBe(0);
      expect(JSON.parse(child.stdout)).toEqual({ status: 200, echoed: 'exit-1', body: { viaFetch: 'exit-1', viaHttp: 'exit-1' } });
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  }
});
