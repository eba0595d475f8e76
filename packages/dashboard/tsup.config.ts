import { defineConfig } from 'tsup';
import shared from '../../tsup.shared.js';

// The server side. `shims` gives the CommonJS build an import.meta.url, which assets.ts uses to
// find the page's files; the page itself is built next by tsup.client.config.ts.
export default defineConfig({ ...shared, shims: true });
