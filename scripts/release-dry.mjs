// `pnpm release:dry`: what the next release would publish, without publishing and without touching
// the repo. On a throw-away copy of the working tree (tracked and untracked files, and each
// package's built dist/): an install from pnpm's store, `changeset version` (versions, CHANGELOGs),
// then `changeset pack` (the tarballs and the publish plan that `changeset publish` would use).
// The tarballs and the plan are left in .tmp/release/; the copy is deleted.
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pnpm, publicPackages, root, run, tarballName } from './packages.mjs';

// @changesets/cli 3 runs on Node 22.11 and later; the packages themselves support Node 20.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 11)) {
  console.error(`release:dry needs Node 22.11 or later for @changesets/cli 3 (this is ${process.version}).`);
  process.exit(1);
}

const out = join(root, '.tmp', 'release');
const copy = mkdtempSync(join(tmpdir(), 'loopsight-release-'));
let env = process.env;
const changeset = (args) =>
  run(process.execPath, [join(copy, 'node_modules', '@changesets', 'cli', 'bin.js'), ...args], { cwd: copy, env });

try {
  // changeset pack runs `pnpm` some thirty times; the pinned one may be reachable only through npx,
  // so its path is looked up once and put on PATH.
  const { packageManager } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const pnpmPath = (await run('npx', ['--yes', '--package', packageManager, '-c', 'command -v pnpm'])).stdout.trim();
  const shims = join(copy, '.shims');
  mkdirSync(shims);
  writeFileSync(join(shims, 'pnpm'), `#!/bin/sh\nexec "${pnpmPath}" "$@"\n`);
  chmodSync(join(shims, 'pnpm'), 0o755);
  env = { ...process.env, PATH: `${shims}:${process.env.PATH}` };

  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard']);
  for (const file of stdout.split('\0')) {
    if (file === '' || !existsSync(join(root, file)) || !statSync(join(root, file)).isFile()) continue;
    mkdirSync(dirname(join(copy, file)), { recursive: true });
    cpSync(join(root, file), join(copy, file));
  }
  const before = publicPackages(copy);
  for (const pkg of before) {
    if (!existsSync(join(root, pkg.dir, 'dist'))) throw new Error(`${pkg.dir}/dist is missing: run \`pnpm build\` first`);
    cpSync(join(root, pkg.dir, 'dist'), join(copy, pkg.dir, 'dist'), { recursive: true });
  }
  await pnpm(['install', '--frozen-lockfile', '--prefer-offline', '--ignore-scripts'], { cwd: copy });

  await changeset(['version']);
  const after = new Map(publicPackages(copy).map((pkg) => [pkg.name, pkg]));

  console.log('\nchangeset version would write:');
  for (const pkg of before) {
    const next = after.get(pkg.name);
    const changelog = readFileSync(join(copy, pkg.dir, 'CHANGELOG.md'), 'utf8');
    const entry = changelog.slice(changelog.indexOf('\n## ')).split(/\n(?=## )/)[1] ?? '(no entry)';
    console.log(`\n${pkg.name}  ${pkg.version} → ${next.version}   ${pkg.dir}/CHANGELOG.md:\n${entry.trim().replace(/^/gm, '  | ')}`);
  }

  rmSync(out, { recursive: true, force: true });
  await changeset(['pack', '--out-dir', out]);
  console.log(`\nchangeset pack wrote ${join('.tmp', 'release')}/ (nothing was published):`);
  for (const pkg of after.values()) {
    const tarball = join(out, 'packages', tarballName(pkg.name, pkg.version));
    if (!existsSync(tarball)) throw new Error(`no tarball for ${pkg.name}@${pkg.version}`);
    const { stdout: manifest } = await run('tar', ['-xzOf', tarball, 'package/package.json']);
    if (manifest.includes('workspace:')) throw new Error(`${tarball} still has a workspace: range`);
    console.log(`  packages/${tarballName(pkg.name, pkg.version).padEnd(34)} ${(statSync(tarball).size / 1024).toFixed(1).padStart(6)} kB`);
  }
  console.log(`  publish-plan.json`);
} finally {
  rmSync(copy, { recursive: true, force: true });
}
