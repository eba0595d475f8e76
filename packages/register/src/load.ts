import { createRequire } from 'node:module';

// Loaded when first needed, never on import: every process that inherits NODE_OPTIONS (npm, build
// tools, one-off scripts) loads this package, and a disabled preload must cost it nothing
// (docs/benchmarks.md, "Preload start-up cost"). Synchronous, so that the monitor starts before the
// application's code runs; the CommonJS builds, whose state the ESM builds share (Symbol.for keys).
const req = createRequire(import.meta.url);

export const load = {
  core: () => req('@loopsight/core') as typeof import('@loopsight/core'),
  adapterKit: () => req('@loopsight/core/adapter') as typeof import('@loopsight/core/adapter'),
  context: () => req('@loopsight/context') as typeof import('@loopsight/context'),
  options: () => req('@loopsight/options') as typeof import('@loopsight/options'),
  channels: () => req('node:diagnostics_channel') as typeof import('node:diagnostics_channel'),
  threads: () => req('node:worker_threads') as typeof import('node:worker_threads'),
  http: () => req('node:http') as typeof import('node:http'),
  https: () => req('node:https') as typeof import('node:https'),
  cluster: () => req('node:cluster') as typeof import('node:cluster').default,
  prometheus: () => req('@loopsight/prometheus') as typeof import('@loopsight/prometheus'),
};
