import { defineConfig } from 'tsup';
import shared from '../../tsup.shared.js';

// Three entries, the public API and the kits of loopsight's own adapters (./adapter) and exporters
// (./exporter), over shared chunks in each format: one Monitor class, one copy of the state.
export default defineConfig({
  ...shared,
  entry: ['src/index.ts', 'src/adapter-kit.ts', 'src/exporter-kit.ts'],
  splitting: true,
});
