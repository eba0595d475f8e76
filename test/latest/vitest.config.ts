import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `pnpm test:latest`: apart from the workspace's config, so that `pnpm test` never depends on what
// the registry published this morning. Runs the packed tarballs, so it needs no aliases.
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/latest/**/*.test.ts'],
    testTimeout: 90_000,
    hookTimeout: 300_000,
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: process.env.LOOPSIGHT_RESULTS ?? '.tmp/vitest-latest.json' },
    fileParallelism: false,
    globalSetup: ['test-support/build-dist.ts'],
  },
});
