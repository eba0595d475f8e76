// What @loopsight/register costs a process that never serves (`node --import … -e 1`, as npm and
// build tools run under NODE_OPTIONS): wall time of many fresh processes per configuration, the
// configurations alternated round by round so that a load change on the machine hits them all alike,
// medians. `bare` twice (A/A): the difference between the two is the noise floor of the run.
// Wall time, and CPU time (user + system, every thread of the child, from /usr/bin/time when the
// machine has it): on a shared, loaded machine the CPU time is the steadier of the two.
//
//   node benchmarks/preload-cost.mjs [--runs 40] [--node /path/to/node ...]
//
// Build first (`pnpm build`): it loads packages/register/dist.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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
const empty = fileURLToPath(new URL('./fixtures-preload/empty.mjs', import.meta.url));
const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LOOPSIGHT_') && k !== 'NODE_OPTIONS'));

const configs = [
  { name: 'bare (A)', argv: ['-e', '1'], env: {} },
  { name: 'bare (A/A control)', argv: ['-e', '1'], env: {} },
  { name: '--import of an empty module (the floor)', argv: ['--import', empty, '-e', '1'], env: {} },
  { name: 'LOOPSIGHT_ENABLED=false', argv: ['--import', preload, '-e', '1'], env: { LOOPSIGHT_ENABLED: 'false' } },
  { name: 'enabled', argv: ['--import', preload, '-e', '1'], env: {} },
  { name: 'enabled, LOOPSIGHT_METRICS_PORT set', argv: ['--import', preload, '-e', '1'], env: { LOOPSIGHT_METRICS_PORT: '0' } },
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const TIME = '/usr/bin/time';
const cpuToo = existsSync(TIME);
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor(p * (xs.length - 1))];

for (const node of nodes) {
  const version = spawnSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).stdout.trim();
  const times = configs.map(() => []);
  const cpu = configs.map(() => []);
  for (let round = 0; round < runs; round++) {
    // Alternated, and the starting configuration rotates: no configuration always runs first.
    for (let k = 0; k < configs.length; k++) {
      const i = (k + round) % configs.length;
      const { argv, env } = configs[i];
      const t0 = process.hrtime.bigint();
      const child = cpuToo
        ? spawnSync(TIME, ['-f', '@cpu %U %S', node, ...argv], {
            env: { ...clean, ...env },
            stdio: ['ignore', 'ignore', 'pipe'],
            encoding: 'utf8',
          })
        : spawnSync(node, argv, { env: { ...clean, ...env }, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
      times[i].push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (child.status !== 0) throw new Error(`${configs[i].name} exited with ${child.status}: ${child.stderr}`);
      const used = /@cpu ([\d.]+) ([\d.]+)/.exec(child.stderr);
      if (used) cpu[i].push((Number(used[1]) + Number(used[2])) * 1000);
    }
  }
  const row = (xs, base, i) => {
    const m = median(xs);
    const diff = i === 0 ? '' : `${m - base >= 0 ? '+' : ''}${(m - base).toFixed(0)}`;
    return `${m.toFixed(0)} | ${diff} | ${percentile(xs, 0.25).toFixed(0)}–${percentile(xs, 0.75).toFixed(0)}`;
  };
  console.log(`\nNode ${version}, ${runs} processes per row, alternated; medians of \`node … -e 1\`, ms\n`);
  console.log(`| configuration | wall | vs bare | p25–p75 |${cpuToo ? ' CPU | vs bare | p25–p75 |' : ''}`);
  console.log(`|---|---|---|---|${cpuToo ? '---|---|---|' : ''}`);
  configs.forEach((c, i) => {
    const cpuCells = cpuToo ? ` ${row(cpu[i], median(cpu[0]), i)} |` : '';
    console.log(`| ${c.name} | ${row(times[i], median(times[0]), i)} |${cpuCells}`);
  });
}
