import { defineConfig } from 'tsup';
import shared from '../../tsup.shared.js';

// Two entries, the public API and the kit loopsight's own packages share (./internal), over one
// shared chunk in each format: one Monitor class, one copy of the state.
export default defineConfig({ ...shared, entry: ['src/index.ts', 'src/internal.ts'], splitting: true });
