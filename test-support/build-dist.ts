// Vitest global setup: rebuilds every package whose dist/ is older than its sources, so that no
// test runs a stale build. About 20 test files run `dist/` (fixtures spawned as child processes,
// the ESM/CommonJS pair, source maps, the examples): after an edit to watchdog.ts they would
// otherwise test the previous build. A fresh clone builds everything here; after `pnpm build` (CI's
// lint) there is nothing to do.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The newest modification time of a file under `dir` (0 when there is none). */
function newest(dir: string): number {
  if (!existsSync(dir)) return 0;
  let latest = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return latest;
}

/** The packages whose build is missing or older than anything it is built from. */
export function staleBuilds(): string[] {
  const shared = Math.max(...['tsup.shared.ts', 'tsconfig.base.json', 'pnpm-lock.yaml'].map((file) => statSync(join(root, file)).mtimeMs));
  const packages = join(root, 'packages');
  return readdirSync(packages, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(packages, entry.name, 'package.json')))
    .map((entry) => join(packages, entry.name))
    .filter((dir) => 'build' in (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).scripts ?? {}))
    .filter((dir) => {
      const built = join(dir, 'dist', 'index.js');
      if (!existsSync(built)) return true;
      const inputs = ['package.json', 'tsup.config.ts', 'tsconfig.json']
        .map((file) => join(dir, file))
        .filter((file) => existsSync(file))
        .map((file) => statSync(file).mtimeMs);
      return Math.max(shared, newest(join(dir, 'src')), ...inputs) > statSync(built).mtimeMs;
    })
    .map((dir) => `./${dir.slice(root.length).replaceAll('\\', '/')}`);
}

export default function setup(): void {
  const stale = staleBuilds();
  if (stale.length === 0) return;
  console.log(`building ${stale.join(', ')}: dist/ is older than the sources`);
  const { packageManager } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { packageManager: string };
  // Through npx as everywhere else, so that the pinned pnpm builds; output only when it fails.
  execFileSync('npx', ['--yes', packageManager, ...stale.flatMap((dir) => ['--filter', dir]), 'build'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}
