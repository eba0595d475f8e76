import { defineConfig } from 'tsup';

// One build for every package: ESM + CJS + .d.ts/.d.cts, for Node 20 and later.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  sourcemap: true,
});
