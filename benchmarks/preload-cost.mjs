// What @loopsight/register costs a process that never serves (`node --import … -e 1`, as npm and
// build tools run under NODE_OPTIONS): wall time of many fresh processes per configuration, the
// configurations alternated round by round so that a load change on the machine hits them all alike,
// medians. `bare` twice (A/A): the difference between the two is the noise floor of the run.
//
//   node benchmarks/preload-cost.mjs [--runs 40] [--node /path/to/node ...]
//
// Build first (`pnpm build`): it loads packages/register/dist.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const runs = Number(flag('--runs', '40'));
const nodes = args.flatMap((a, i) => (args[i - 1] === '--node' ? [a] : []));
if (nodes.length === 0) nodes.push(process.execPath);

const preload = fileURLToPath(new URL('../packages/register/dist/index.js', import.meta.url));
const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LOOPSIGHT_') && k !== 'NODE_OPTIONS'));

const configs = [
  { name: 'bare (A)', argv: ['-e', '1'], env: {} },
  { name: 'bare (A/A control)', argv: ['-e', '1'], env: {} },
  { name: 'LOOPSIGHT_ENABLED=false', argv: ['--import', preload, '-e', '1'], env: { LOOPSIGHT_ENABLED: 'false' } },
  { name: 'enabled', argv: ['--import', preload, '-e', '1'], env: {} },
  { name: 'enabled, LOOPSIGHT_METRICS_PORT set', argv: ['--import', preload, '-e', '1'], env: { LOOPSIGHT_METRICS_PORT: '0' } },
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

for (const node of nodes) {
  const version = spawnSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).stdout.trim();
  const times = configs.map(() => []);
  for (let round = 0; round < runs; round++) {
    // Alternated, and the starting configuration rotates: no configuration always runs first.
    for (let k = 0; k < configs.length; k++) {
      const i = (k + round) % configs.length;
      const { argv, env } = configs[i];
      const t0 = process.hrtime.bigint();
      const child = spawnSync(node, argv, { env: { ...clean, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
      times[i].push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (child.status !== 0) throw new Error(`${configs[i].name} exited with ${child.status}: ${child.stderr}`);
    }
  }
  const base = median(times[0]);
  console.log(`\nNode ${version}, ${runs} processes per row, alternated; median wall time of \`node … -e 1\`\n`);
  console.log('| configuration | median ms | vs bare ms | p25–p75 ms |');
  console.log('|---|---|---|---|');
  configs.forEach((c, i) => {
    const s = [...times[i]].sort((a, b) => a - b);
    const q = (p) => s[Math.floor(p * (s.length - 1))].toFixed(0);
    const m = median(times[i]);
    console.log(`| ${c.name} | ${m.toFixed(1)} | ${i === 0 ? '' : (m - base >= 0 ? '+' : '') + (m - base).toFixed(1)} | ${q(0.25)}–${q(0.75)} |`);
  });
}
