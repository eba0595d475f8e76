import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources; the packed builds are tested by dist.test.ts and the demo.
    alias: {
      '@loopsight/core': src('core'),
      '@loopsight/context': src('context'),
      '@loopsight/express': src('express'),
      '@loopsight/fastify': src('fastify'),
      '@loopsight/koa': src('koa'),
      '@loopsight/loop-lag': src('loop-lag'),
      '@loopsight/promises': src('promises'),
      '@loopsight/prometheus': src('prometheus'),
      '@loopsight/otel': src('otel'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
