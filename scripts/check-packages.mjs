// `pnpm check:packages`: publint --strict and Are the Types Wrong on the tarball of every public
// package, exactly as `pnpm pack` makes it. Run after `pnpm build`; exits 1 if any check fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packAll, root, run } from './packages.mjs';

const bin = (name) => join(root, 'node_modules', '.bin', name);

// The strict profile resolves each entry point as TypeScript does under node10 (moduleResolution
// "node", still common), node16/nodenext from CommonJS and from ESM, and bundler.
const checks = [
  { name: 'publint', args: (tarball) => ['run', '--strict', tarball], command: bin('publint') },
  { name: 'attw', args: (tarball) => [tarball, '--profile', 'strict', '--format', 'ascii', '--no-color'], command: bin('attw') },
];

const destination = mkdtempSync(join(tmpdir(), 'loopsight-check-'));
let failed = 0;
try {
  const started = performance.now();
  const packed = await packAll(destination);
  for (const pkg of packed) {
    // The two checks of one package side by side; packages one after another, for readable output.
    const results = await Promise.allSettled(checks.map((check) => run(check.command, check.args(pkg.tarball))));
    results.forEach((result, i) => {
      const label = `${checks[i].name.padEnd(8)} ${pkg.name}`;
      if (result.status === 'rejected') {
        failed++;
        console.log(`FAIL  ${label}\n${result.reason.message}\n`);
        return;
      }
      // publint passes with suggestions; show them rather than hide them.
      const suggestions = checks[i].name === 'publint' && !result.value.stdout.includes('All good!');
      console.log(`ok    ${label}${suggestions ? `\n${result.value.stdout}` : ''}`);
    });
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`${packed.length} packages, ${failed === 0 ? 'all clean' : `${failed} failed`} (${seconds} s)`);
} finally {
  rmSync(destination, { recursive: true, force: true });
}
process.exitCode = failed === 0 ? 0 : 1;
