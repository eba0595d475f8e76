// The workspace's public packages, packed the way `pnpm publish` packs them: `workspace:` ranges
// rewritten to the versions being released, the root LICENSE added. Shared by the pack test
// (test/pack), `pnpm check:packages` and `pnpm release:dry`.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

/** Every `packages/*` that is not private, in directory order. Read fresh: packages come and go. */
export function publicPackages(workspace = root) {
  const dir = join(workspace, 'packages');
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, 'package.json')))
    .map((entry) => {
      const manifest = JSON.parse(readFileSync(join(dir, entry.name, 'package.json'), 'utf8'));
      return { dir: `packages/${entry.name}`, name: manifest.name, version: manifest.version, manifest };
    })
    .filter((pkg) => pkg.manifest.private !== true);
}

/** The file `pnpm pack` writes for a package: `@loopsight/core@0.1.0` → `loopsight-core-0.1.0.tgz`. */
export function tarballName(name, version) {
  return `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`;
}

/**
 * How long a command may run before it is killed: 5 minutes, or LOOPSIGHT_SCRIPT_TIMEOUT_MS (CI's
 * niced lanes, which the timing runs may starve for minutes: a `pnpm pack` at nice 19 was killed at
 * 5 minutes once).
 */
const DEFAULT_TIMEOUT_MS = Number(process.env.LOOPSIGHT_SCRIPT_TIMEOUT_MS) > 0 ? Number(process.env.LOOPSIGHT_SCRIPT_TIMEOUT_MS) : 300_000;

/**
 * Runs a command; resolves with its output, rejects with all of it. Output is collected, not
 * inherited, so a failure names the command and says everything it printed.
 */
export function run(command, args, { cwd = root, env = process.env, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${command} ${args.join(' ')} (in ${cwd}) exited with ${signal ?? code}\n${stdout}\n${stderr}`.trimEnd()));
    });
  });
}

/**
 * The environment for npm run from a pnpm script: npm must see its own configuration, not the one
 * pnpm exports to the scripts it runs (local_prefix would point at the repo). Shared by test/pack
 * and test/latest.
 */
export function npmEnv() {
  const keep = new Set(['registry', 'cache', 'cafile', 'userconfig', 'proxy', 'https_proxy', 'noproxy', 'strict_ssl']);
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => {
      const lower = key.toLowerCase();
      if (lower.startsWith('npm_config_')) return keep.has(lower.slice('npm_config_'.length));
      return !lower.startsWith('npm_') && !lower.startsWith('pnpm_');
    }),
  );
}

/** pnpm at the version the root package.json pins, through npx, as the README and CI run it. */
export function pnpm(args, options) {
  const { packageManager } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  return run('npx', ['--yes', packageManager, ...args], options);
}

/**
 * Packs every public package of `workspace` into `destination` with one `pnpm pack` run.
 * Needs the packages built (their `dist/`). Returns the packages with the tarball of each.
 */
export async function packAll(destination, workspace = root) {
  const packages = publicPackages(workspace);
  const filters = packages.flatMap((pkg) => ['--filter', `./${pkg.dir}`]);
  for (const pkg of packages) {
    if (!existsSync(join(workspace, pkg.dir, 'dist'))) throw new Error(`${pkg.dir}/dist is missing: run \`pnpm build\` first`);
  }
  await pnpm(['-r', ...filters, 'pack', '--pack-destination', destination], { cwd: workspace });
  return packages.map((pkg) => {
    const tarball = join(destination, tarballName(pkg.name, pkg.version));
    if (!existsSync(tarball)) throw new Error(`pnpm pack wrote no ${tarball}`);
    return { ...pkg, tarball };
  });
}
