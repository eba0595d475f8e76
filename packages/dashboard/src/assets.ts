import { readFile } from 'node:fs/promises';

export interface Asset {
  type: string;
  body: Buffer;
}

// The page's script and styles are built into dist/client (tsup.client.config.ts). '../dist/client/'
// names that folder from dist/index.js and from src/assets.ts alike, so the sources under test
// serve the built page too.
const CLIENT = new URL('../dist/client/', import.meta.url);

const FILES: Record<string, { file: string; type: string }> = {
  '/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
};

// Read once, on the first request for each: the files are small (uPlot included, about 60 kB).
const cache = new Map<string, Promise<Asset>>();

/** The asset served at `subpath` (below the dashboard's path), or undefined for any other path. */
export function asset(subpath: string): Promise<Asset> | undefined {
  const entry = FILES[subpath];
  if (entry === undefined) return undefined;
  let loading = cache.get(subpath);
  if (loading === undefined) {
    loading = readFile(new URL(entry.file, CLIENT)).then((body) => ({ type: entry.type, body }));
    // A failed read (the package was not built) is tried again on the next request.
    loading.catch(() => cache.delete(subpath));
    cache.set(subpath, loading);
  }
  return loading;
}

/**
 * The page. No inline script or style (the Content-Security-Policy forbids both); the only value
 * written into it is the validated `path`, made of URL path characters.
 */
export function page(path: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>loopsight</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${path}/dashboard.css">
<script defer src="${path}/dashboard.js"></script>
</head>
<body data-feed="${path}/events">
<noscript>The loopsight dashboard needs JavaScript.</noscript>
</body>
</html>
`;
}

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};
