#!/usr/bin/env node
// A supertest-style test suite with an app per test, run with node:test, plain and with loopsight
// mounted in every app: the wall time and the CPU time of the whole run, as ratios to plain in the
// same rounds.
//
//   node suite.mjs [--tests N] [--rounds N] [--framework express|koa|fastify]... [--no-write]
//
// Each round runs every configuration once, in an order that rotates from round to round; the
// A/A control is the plain suite run twice per round. The suite is test-support/fixtures/suite,
// run in one process (node:test runs a file given to node directly in-process).
//
// Each test listens on a fresh port, and each run leaves ~2 sockets per test in TIME_WAIT for 60 s;
// with thousands of them, bind() of port 0 spends seconds of system time searching the ephemeral
// range (measured: 0.6 to 5.4 s of sys time for the same 2,000-test run). Before each run the
// harness waits (up to --drain seconds) for the count to fall below 3,000.

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SUITE = path.join(HERE, '../test-support/fixtures/suite/node-test.test.mjs');
const CPU_REPORT = path.join(HERE, '../test-support/fixtures/suite/cpu-report.mjs');

const { values: args } = parseArgs({
  options: {
    tests: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '5' },
    drain: { type: 'string', default: '30' },
    framework: { type: 'string', multiple: true },
    'no-write': { type: 'boolean', default: false },
  },
});
const tests = Number(args.tests);
const rounds = Number(args.rounds);
const frameworks = (args.framework ?? ['express', 'koa', 'fastify']).flatMap((f) => f.split(','));

const configs = [
  { name: 'plain', plain: true },
  { name: 'plain (A/A control)', plain: true },
  { name: 'loopsight', plain: false },
];

/** Sockets in TIME_WAIT (state 06 in /proc/net/tcp{,6}). */
function timeWait() {
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) if (line.split(/\s+/)[4] === '06') n++;
    } catch {
      // Not Linux: no wait.
    }
  }
  return n;
}

function drain() {
  const until = Date.now() + Number(args.drain) * 1000;
  while (timeWait() > 3000 && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
}

function runSuite(framework, plain) {
  drain();
  const started = process.hrtime.bigint();
  const child = spawnSync(process.execPath, [`--import=${pathToFileURL(CPU_REPORT).href}`, '--test-reporter=dot', SUITE], {
    encoding: 'utf8',
    env: {
      ...process.env,
      LOOPSIGHT_SUITE_FRAMEWORK: framework,
      LOOPSIGHT_SUITE_N: String(tests),
      LOOPSIGHT_SUITE_PLAIN: plain ? '1' : '0',
    },
    timeout: 600_000,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (child.status !== 0) throw new Error(`${framework} suite failed (plain=${plain}):\n${child.stdout}\n${child.stderr}`);
  const cpu = JSON.parse(/LOOPSIGHT_SUITE_CPU (.*)/.exec(child.stderr)?.[1] ?? 'null');
  if (!cpu) throw new Error('the suite did not report its CPU time');
  return { seconds, userS: cpu.userMs / 1e3, cpuS: (cpu.userMs + cpu.systemMs) / 1e3 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const METRICS = ['seconds', 'userS', 'cpuS'];
const rows = [];
for (const framework of frameworks) {
  const runs = new Map(configs.map((c) => [c.name, []]));
  const ratios = new Map(configs.map((c) => [c.name, Object.fromEntries(METRICS.map((m) => [m, []]))]));
  for (let round = 0; round < rounds; round++) {
    const order = configs.map((_, i) => configs[(i + round) % configs.length]);
    const seen = {};
    for (const config of order) {
      seen[config.name] = runSuite(framework, config.plain);
      runs.get(config.name).push(seen[config.name]);
    }
    for (const config of configs) for (const m of METRICS) ratios.get(config.name)[m].push(seen[config.name][m] / seen.plain[m]);
    process.stderr.write(
      `${framework} round ${round + 1}/${rounds}: ${configs.map((c) => `${c.name} ${seen[c.name].seconds.toFixed(2)} s (user ${seen[c.name].userS.toFixed(2)} s)`).join(', ')}\n`,
    );
  }
  for (const config of configs) {
    if (config.name === 'plain') continue;
    const r = ratios.get(config.name);
    const range = (xs) => `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`;
    rows.push({
      framework,
      config: config.name,
      plainS: median(runs.get('plain').map((x) => x.seconds)),
      s: median(runs.get(config.name).map((x) => x.seconds)),
      wall: median(r.seconds),
      wallRange: range(r.seconds),
      user: median(r.userS),
      userRange: range(r.userS),
      cpu: median(r.cpuS),
    });
  }
}

const header = [
  `Test suite with an app per test: ${tests} tests (node:test + supertest), ${rounds} rounds; ratios are medians over rounds of this run / plain in the same round.`,
  `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${new Date().toISOString().slice(0, 16)}Z.`,
  '',
  '| framework | configuration | plain wall, median | this wall, median | wall ratio | range | user CPU ratio | range | user+sys CPU ratio |',
  '|---|---|---:|---:|---:|---|---:|---|---:|',
];
const table = rows.map(
  (r) =>
    `| ${r.framework} | ${r.config} | ${r.plainS.toFixed(2)} s | ${r.s.toFixed(2)} s | ${r.wall.toFixed(3)} | ${r.wallRange} | ${r.user.toFixed(3)} | ${r.userRange} | ${r.cpu.toFixed(3)} |`,
);
const text = [...header, ...table, ''].join('\n');
process.stdout.write(text);
if (!args['no-write']) {
  mkdirSync(path.join(HERE, 'results'), { recursive: true });
  const file = path.join(HERE, 'results', `suite-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-')}.md`);
  writeFileSync(file, text);
  process.stderr.write(`written: ${path.relative(process.cwd(), file)}\n`);
}
