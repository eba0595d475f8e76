import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const BROWSER = 'packages/dashboard/test/browser.test.ts';
const src = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

/**
 * Timing-sensitive test files: they block the loop (or make a child process block its loop) and
 * assert on what that yields: stalls, loop delay, utilization, CPU, shedding. They run one file at a
 * time, with nothing else running, after the parallel files. A new file belongs here when it blocks
 * the loop and asserts on a stall, a delay or a duration; a file whose name says `stall`, `delay`,
 * `block` or `timing` lands here by its name. Everything else runs in parallel workers.
 */
export const TIMING_SENSITIVE = [
  'packages/loop-lag/test/**/*.test.ts',
  'packages/core/test/{hostile-files,monitor,per-process,phase,shared-recorder,sourcemap}.test.ts',
  'packages/dashboard/test/dashboard.test.ts',
  'packages/nestjs/test/pipeline.test.ts',
  'packages/otel/test/{metrics,no-instrumentation,otlp-example,threads,traces}.test.ts',
  'packages/prometheus/test/{exporter,prometheus-server,threads}.test.ts',
  'packages/register/test/{config-file,eval-worker,preload,serving}.test.ts',
  'packages/*/test/**/*{stall,delay,block,timing}*.test.ts',
  'test/demo/**/*.test.ts',
];

export default defineConfig({
  // What tsup stamps into each build (tsup.shared.ts); the sources under test read this.
  define: { __LOOPSIGHT_VERSION__: JSON.stringify('0.0.0-source') },
  resolve: {
    // Tests run against the sources; the builds are tested by dist.test.ts, test/pack (the packed tarballs) and the demo.
    // Subpaths first: an alias also matches the names it prefixes.
    alias: {
      '@loopsight/core/adapter': fileURLToPath(new URL('./packages/core/src/adapter-kit.ts', import.meta.url)),
      '@loopsight/core/exporter': fileURLToPath(new URL('./packages/core/src/exporter-kit.ts', import.meta.url)),
      '@loopsight/core': src('core'),
      '@loopsight/loop-lag/kit': fileURLToPath(new URL('./packages/loop-lag/src/kit.ts', import.meta.url)),
      '@loopsight/bullmq': src('bullmq'),
      '@loopsight/context': src('context'),
      '@loopsight/dashboard': src('dashboard'),
      '@loopsight/express': src('express'),
      '@loopsight/fastify': src('fastify'),
      '@loopsight/koa': src('koa'),
      '@loopsight/nestjs': src('nestjs'),
      '@loopsight/hono': src('hono'),
      '@loopsight/ws': src('ws'),
      '@loopsight/loop-lag': src('loop-lag'),
      '@loopsight/promises': src('promises'),
      '@loopsight/prometheus': src('prometheus'),
      '@loopsight/otel': src('otel'),
      '@loopsight/options': src('options'),
    },
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // The JSON report is what CI's closing `N passed, N failed` line is read from; CI runs several
    // at once and names each its own file.
    reporters: ['default', 'json'],
    outputFile: { json: process.env.LOOPSIGHT_RESULTS ?? '.tmp/vitest-results.json' },
    // Some files run dist/ (fixtures in child processes, the examples, the packed tarballs): any
    // package whose build is older than its sources is rebuilt first.
    globalSetup: ['test-support/build-dist.ts'],
    // The groups run one after another (groupOrder); only the first runs files side by side.
    projects: [
      // Real servers and child processes that wait on I/O more than they compute: four at a time
      // on CI's two cores (LOOPSIGHT_WORKERS: CI's side-by-side runs take one or two each).
      {
        extends: true,
        test: {
          name: 'packages',
          include: ['packages/*/test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, BROWSER, ...TIMING_SENSITIVE],
          maxWorkers: Number(process.env.LOOPSIGHT_WORKERS ?? 4),
          sequence: { groupOrder: 0 },
        },
      },
      // One file at a time: a neighbour's injected blocks and CPU work would be stalls of its own.
      // Each file still holds with one other timing-sensitive run beside it (CI runs Node 24's,
      // 26's and 22's side by side: together about one core and a half, as they mostly wait).
      {
        extends: true,
        test: {
          name: 'timing',
          include: TIMING_SENSITIVE,
          exclude: [...configDefaults.exclude, BROWSER],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      // The dashboard's browser test runs a Chromium: alone, so that neither its load nor that of
      // the others lands on the other's timing-sensitive tests.
      { extends: true, test: { name: 'browser', include: [BROWSER], fileParallelism: false, sequence: { groupOrder: 2 } } },
      // The packed-tarball test installs with npm and compiles with tsc: last, so its load never
      // lands on the timing-sensitive tests.
      {
        extends: true,
        test: {
          name: 'pack',
          include: ['test/**/*.test.ts'],
          // test/latest has a config of its own: `pnpm test:latest`, never part of `pnpm test`.
          exclude: [...configDefaults.exclude, ...TIMING_SENSITIVE, 'test/latest/**'],
          fileParallelism: false,
          sequence: { groupOrder: 3 },
        },
      },
    ],
  },
});
