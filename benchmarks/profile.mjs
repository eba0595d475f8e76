#!/usr/bin/env node
// CPU profile of one benchmark server under load: where its time goes, by function and by package.
//
//   node profile.mjs [--framework express] [--variant loopsight] [--route /hello] [--duration 10] [--connections 50] [--top 25]
//
// Starts `node --cpu-prof servers/<framework>.mjs <variant>`, warms it up, loads it with autocannon,
// stops it (the profile is written on exit) and prints the functions with the most self time. The
// .cpuprofile is left in benchmarks/results/profiles/ for Chrome DevTools or speedscope.

import { fork } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { frameworks, ROUTE } from './configs.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');

const { values: args } = parseArgs({
  options: {
    framework: { type: 'string', default: 'express' },
    variant: { type: 'string', default: 'loopsight' },
    route: { type: 'string', default: ROUTE },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    top: { type: 'string', default: '25' },
  },
});
if (!Object.hasOwn(frameworks, args.framework)) {
  console.error(`unknown framework ${args.framework}; known: ${Object.keys(frameworks).join(', ')}`);
  process.exit(2);
}

const dir = path.join(HERE, 'results', 'profiles');
mkdirSync(dir, { recursive: true });
const prefix = `${args.framework}-${args.variant}-${Date.now()}`;

// The variant's own Node options (the OTel variant's --import) come first.
const config = frameworks[args.framework].find((c) => c.variant === args.variant);
const child = fork(path.join(HERE, 'servers', `${args.framework}.mjs`), [args.variant], {
  cwd: HERE,
  execArgv: [...(config?.execArgv ?? []), '--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', `${prefix}.cpuprofile`],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  env: { ...process.env, NODE_ENV: 'production' },
});
const kill = () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL');
process.on('exit', kill);
process.on('SIGINT', () => process.exit(130));
const guard = setTimeout(
  () => {
    console.error('time limit reached');
    process.exit(1);
  },
  (Number(args.duration) + 60) * 1000,
);
guard.unref();

const port = await new Promise((resolve, reject) => {
  child.on('message', (m) => m?.type === 'ready' && resolve(m.port));
  child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
});
const url = `http://127.0.0.1:${port}${args.route}`;
const run = (seconds) => autocannon({ url, connections: Number(args.connections), duration: seconds });

const ended = new Promise((resolve) => child.on('message', (m) => m?.type === 'ended' && resolve(m)));
child.send({ type: 'begin', seq: 1 });
await run(3); // warm-up: the profile still covers it, but the loaded part dominates
const result = await run(Number(args.duration));
child.send({ type: 'end', seq: 2 });
const { requests } = await ended;
console.log(
  `${args.framework} ${args.variant}: ${Math.round(result.requests.total / result.duration)} req/s under the profiler, ${requests} requests in all`,
);
const exited = new Promise((resolve) => child.once('exit', resolve));
child.send({ type: 'stop' });
await exited;

const file = readdirSync(dir).find((f) => f.startsWith(prefix));
if (!file) throw new Error('no profile was written');
const profile = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));

// Self time per node from the sample intervals, then summed by function and by package.
const selfByNode = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfByNode.set(id, (selfByNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const total = [...selfByNode.values()].reduce((a, b) => a + b, 0);

function where(url) {
  if (!url) return '(native)';
  const file = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (file.startsWith('node:')) return 'node';
  const pkg = /packages\/([^/]+)\/dist\//.exec(file);
  if (pkg) return `@loopsight/${pkg[1]}`;
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules)/.exec(file);
  if (mod) return mod[1];
  if (file.startsWith(REPO)) return path.relative(REPO, file);
  return file;
}

const byFunction = new Map();
const byPackage = new Map();
for (const node of profile.nodes) {
  const self = selfByNode.get(node.id) ?? 0;
  if (self === 0) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const owner = where(url);
  const file = url ? path.basename(url.replace(/^file:\/\//, '')) : '';
  const key = `${functionName || '(anonymous)'}  ${owner}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + self);
  byPackage.set(owner, (byPackage.get(owner) ?? 0) + self);
}

// Share of all samples, and µs of self time per request served.
const pct = (v) => `${((v / total) * 100).toFixed(1).padStart(5)} %  ${(v / requests).toFixed(2).padStart(6)} µs/req`;
const top = Number(args.top);
console.log(`\nself time by owner (of ${(total / 1e6).toFixed(1)} s sampled):`);
for (const [k, v] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${pct(v)}  ${k}`);
console.log(`\ntop ${top} functions by self time:`);
for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)}  ${k}`);
console.log('\nfunctions in packages/* by self time:');
for (const [k, v] of [...byFunction]
  .filter(([k]) => k.includes('@loopsight/'))
  .sort((a, b) => b[1] - a[1])
  .slice(0, top))
  console.log(`${pct(v)}  ${k}`);
console.log(`\nprofile: ${path.relative(process.cwd(), path.join(dir, file))}`);
process.exit(0);
