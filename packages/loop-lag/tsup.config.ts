import { defineConfig } from 'tsup';
import shared from '../../tsup.shared.js';

// Three entries: the package, core's kit (./kit) and the watchdog thread's script (a Worker loads
// it by path).
export default defineConfig({
  ...shared,
  entry: { index: 'src/index.ts', kit: 'src/kit.ts', 'watchdog-thread': 'src/thread/entry.ts' },
  dts: { entry: { index: 'src/index.ts', kit: 'src/kit.ts' } },
  // No shims: tsup's ESM shim for __filename reads import.meta.url when the module loads, which
  // throws in a CommonJS bundle of this build. watchdog.ts reads `__filename` (CommonJS) or
  // import.meta.url (ESM) itself, when the thread starts; the CommonJS build's empty import.meta
  // is never read there.
  esbuildOptions(options) {
    options.logOverride = { ...options.logOverride, 'empty-import-meta': 'silent' };
  },
  // Each entry whole, no shared chunk: the thread's script is one file per format, which a bundled
  // app can copy beside its bundle, and tsup's CommonJS chunks keep import.meta as it is. The
  // package's state lives on globalThis symbols, so the entries share it without a chunk.
  splitting: false,
});
