import { defineConfig } from 'tsup';
import shared from '../../tsup.shared.js';

// Two entries: the package, and the watchdog thread's script it starts (a Worker loads it by path).
export default defineConfig({
  ...shared,
  entry: { index: 'src/index.ts', 'watchdog-thread': 'src/thread/entry.ts' },
  dts: { entry: { index: 'src/index.ts' } },
  // import.meta.url in the CommonJS build (the thread's file, createRequire).
  shims: true,
  // Each entry whole, no shared chunk: the thread's script is one file per format, which a bundled
  // app can copy beside its bundle. (The package's state lives on globalThis symbols, not in a chunk.)
  splitting: false,
});
