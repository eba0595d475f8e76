import { defineConfig } from 'tsup';

// The page's script and styles, uPlot bundled in: one file each under dist/client, served by the
// package itself (no CDN, no build step for the user). Runs after the server build, which cleans dist.
export default defineConfig({
  entry: { dashboard: 'src/client/main.ts' },
  outDir: 'dist/client',
  format: ['iife'],
  platform: 'browser',
  target: 'es2020',
  minify: true,
  clean: false,
  dts: false,
  sourcemap: false,
  outExtension: () => ({ js: '.js' }),
});
