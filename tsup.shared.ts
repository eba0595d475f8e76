import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

// Each package builds from its own directory: its version is stamped into the build.
const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

// One build for every package: ESM + CJS + .d.ts/.d.cts, for Node 20 and later.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  define: { __LOOPSIGHT_VERSION__: JSON.stringify(version) },
});
