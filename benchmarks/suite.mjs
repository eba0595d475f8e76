#!/usr/bin/env node
// A supertest-style test suite with an app per test, run with node:test, plain and with loopsight
// mounted in every app: the wall time of the whole run, as a ratio to plain in the same rounds.
//
//   node suite.mjs [--tests N] [--rounds N] [--framework express|koa|fastify]... [--no-write]
//
// Each round runs every configuration once, in an order that rotates from round to round; the
// A/A control is the plain suite run twice per round. The suite is test-support/fixtures/suite.

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SUITE = path.join(HERE, '../test-support/fixtures/suite/node-test.test.mjs');

const { values: args } = parseArgs({
  options: {
    tests: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '5' },
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

function runSuite(framework, plain) {
  const started = process.hrtime.bigint();
  const child = spawnSync(process.execPath, ['--test', '--test-reporter=dot', SUITE], {
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
  return seconds;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const rows = [];
for (const framework of frameworks) {
  const times = new Map(configs.map((c) => [c.name, []]));
  const ratios = new Map(configs.map((c) => [c.name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = configs.map((_, i) => configs[(i + round) % configs.length]);
    const seen = {};
    for (const config of order) {
      seen[config.name] = runSuite(framework, config.plain);
      times.get(config.name).push(seen[config.name]);
    }
    for (const config of configs) ratios.get(config.name).push(seen[config.name] / seen.plain);
    process.stderr.write(
      `${framework} round ${round + 1}/${rounds}: ${configs.map((c) => `${c.name} ${seen[c.name].toFixed(2)} s`).join(', ')}\n`,
    );
  }
  for (const config of configs) {
    if (config.name === 'plain') continue;
    const r = ratios.get(config.name);
    rows.push({
      framework,
      config: config.name,
      plainS: median(times.get('plain')),
      s: median(times.get(config.name)),
      ratio: median(r),
      min: Math.min(...r),
      max: Math.max(...r),
    });
  }
}

const header = [
  `Test suite with an app per test: ${tests} tests (node:test + supertest), ${rounds} rounds, wall time of the whole run.`,
  `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${new Date().toISOString().slice(0, 16)}Z.`,
  '',
  '| framework | configuration | plain, median | this, median | ratio to plain (median of rounds) | range |',
  '|---|---|---:|---:|---:|---|',
];
const table = rows.map(
  (r) =>
    `| ${r.framework} | ${r.config} | ${r.plainS.toFixed(2)} s | ${r.s.toFixed(2)} s | ${r.ratio.toFixed(3)} | ${r.min.toFixed(3)}–${r.max.toFixed(3)} |`,
);
const text = [...header, ...table, ''].join('\n');
process.stdout.write(text);
if (!args['no-write']) {
  mkdirSync(path.join(HERE, 'results'), { recursive: true });
  const file = path.join(HERE, 'results', `suite-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-')}.md`);
  writeFileSync(file, text);
  process.stderr.write(`written: ${path.relative(process.cwd(), file)}\n`);
}
