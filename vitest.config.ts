import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const BROWSER = 'packages/dashboard/test/browser.test.ts';
const src = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

export default defineConfig({
  // What tsup stamps into each build (tsup.shared.ts); the sources under test read this.
  define: { __LOOPSIGHT_VERSION__: JSON.stringify('0.0.0-source') },
  resolve: {
    // Tests run against the sources; the builds are tested by dist.test.ts, test/pack (the packed tarballs) and the demo.
    // Subpaths first: an alias also matches the names it prefixes.
    alias: {
      '@loopsight/core/internal': fileURLToPath(new URL('./packages/core/src/internal.ts', import.meta.url)),
      '@loopsight/core': src('core'),
      '@loopsight/context': src('context'),
      '@loopsight/dashboard': src('dashboard'),
      '@loopsight/express': src('express'),
      '@loopsight/fastify': src('fastify'),
      '@loopsight/koa': src('koa'),
      '@loopsight/nestjs': src('nestjs'),
      '@loopsight/hono': src('hono'),
      '@loopsight/loop-lag': src('loop-lag'),
      '@loopsight/promises': src('promises'),
      '@loopsight/prometheus': src('prometheus'),
      '@loopsight/otel': src('otel'),
    },
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'packages', include: ['packages/*/test/**/*.test.ts'], exclude: [...configDefaults.exclude, BROWSER] },
      },
      // The dashboard's browser test runs a Chromium: alone, after the others, so that neither its
      // load nor theirs lands on the other's timing-sensitive tests.
      { extends: true, test: { name: 'browser', include: [BROWSER], sequence: { groupOrder: 1 } } },
      // The packed-tarball test installs with npm and compiles with tsc: it runs after the others,
      // so its load never lands on their timing-sensitive tests (stalls, loop delay).
      { extends: true, test: { name: 'pack', include: ['test/**/*.test.ts'], sequence: { groupOrder: 2 } } },
    ],
  },
});
