import { defineConfig } from 'tsup';
import shared from '../../tsup.shared.js';

// shims: the CommonJS build needs import.meta.url for createRequire (src/exporters.ts).
export default defineConfig({ ...shared, shims: true });
