#!/usr/bin/env node
// Saturation benchmark for the overload guard (`shed`): each framework serves a CPU-heavy route
// (HEAVY_MS of busy work per request) and a light one, and is driven above its capacity by two
// autocannon instances at fixed rates, one per route. Measured without loopsight, with loopsight
// (promises off, no guard), with `shed: { maxEventLoopDelayMs }`, and for Fastify with
// @fastify/under-pressure at the same limit. Per route: successful requests per second, p50 and
// p99 latency of the successful requests, the share answered 503, and the latency of those 503s.
//
//   node shed.mjs [--framework express|fastify|koa]... [--rounds 3] [--duration 6] [--heavy-ms 10]
//                 [--delay-ms 50] [--heavy-rate 150] [--light-rate 400] [--no-write]
//
// Every configuration is its own server process (servers/shed.mjs); load and server never share one.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    framework: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    'heavy-ms': { type: 'string', default: '10' },
    'delay-ms': { type: 'string', default: '50' },
    'heavy-rate': { type: 'string', default: '150' },
    'light-rate': { type: 'string', default: '400' },
    'heavy-connections': { type: 'string', default: '100' },
    'light-connections': { type: 'string', default: '50' },
    quick: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`usage: node shed.mjs [options]
  --framework NAME        express, fastify or koa; repeat or comma-separate (default: all)
  --rounds N              rounds; configurations alternate within each (default 3)
  --duration S            seconds of load per measured run (default 6)
  --warmup S              seconds of load per server before the rounds (default 2)
  --heavy-ms MS           busy CPU per /heavy request (default 10: capacity ≈ 1000 / MS heavy req/s)
  --delay-ms MS           shed.maxEventLoopDelayMs, and under-pressure's maxEventLoopDelay (default 50)
  --heavy-rate R          offered /heavy requests per second (default 150: 1.5 × its capacity alone)
  --light-rate R          offered /light requests per second (default 400)
  --heavy-connections N   connections for /heavy (default 100), --light-connections N for /light (default 50)
  --quick                 1 round of 3 s, 1 s warm-up
  --no-write              do not write benchmarks/results/shed-<date>.md`);
  process.exit(0);
}
const num = (name) => {
  const n = Number(args[name]);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`--${name} must be a positive number (got ${JSON.stringify(args[name])})`);
    process.exit(2);
  }
  return n;
};
const settings = {
  rounds: args.quick ? 1 : num('rounds'),
  duration: args.quick ? 3 : num('duration'),
  warmup: args.quick ? 1 : num('warmup'),
  heavyMs: num('heavy-ms'),
  delayMs: num('delay-ms'),
  heavyRate: num('heavy-rate'),
  lightRate: num('light-rate'),
  heavyConnections: num('heavy-connections'),
  lightConnections: num('light-connections'),
};
const CONFIGS = {
  express: ['bare', 'loopsight', 'loopsight-shed'],
  fastify: ['bare', 'loopsight', 'loopsight-shed', 'under-pressure'],
  koa: ['bare', 'loopsight', 'loopsight-shed'],
};
const LABELS = {
  bare: 'bare',
  loopsight: 'loopsight, no guard',
  'loopsight-shed': `loopsight, shed at ${settings.delayMs} ms`,
  'under-pressure': `@fastify/under-pressure at ${settings.delayMs} ms`,
};
const selected = (args.framework ?? Object.keys(CONFIGS)).flatMap((f) => f.split(',')).filter(Boolean);
for (const f of selected) {
  if (!Object.hasOwn(CONFIGS, f)) {
    console.error(`unknown framework ${JSON.stringify(f)}; known: ${Object.keys(CONFIGS).join(', ')}`);
    process.exit(2);
  }
}

// Every server is killed on exit, on a signal and at the time limit.
const children = new Set();
const killAll = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
};
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}
const perConfig = settings.warmup + settings.rounds * (settings.duration + 1);
const timeLimit = 60 + 3 * selected.reduce((sum, f) => sum + CONFIGS[f].length * perConfig, 0);
setTimeout(() => {
  console.error(`time limit of ${timeLimit} s reached: stopping`);
  process.exit(1);
}, timeLimit * 1000).unref();

async function start(framework, variant) {
  const child = fork(path.join(HERE, 'servers', 'shed.mjs'), [variant, framework], {
    cwd: HERE,
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_ENV: 'production', SHED_HEAVY_MS: String(settings.heavyMs), SHED_DELAY_MS: String(settings.delayMs) },
  });
  children.add(child);
  const port = await new Promise((resolve, reject) => {
    child.on('message', (m) => m?.type === 'ready' && resolve(m.port));
    child.once('exit', (code) => reject(new Error(`${framework} ${variant} exited with ${code}`)));
  });
  let seq = 0;
  const rpc = (type) =>
    new Promise((resolve) => {
      const id = ++seq;
      const on = (m) => {
        if (m?.seq !== id) return;
        child.off('message', on);
        resolve(m);
      };
      child.on('message', on);
      child.send({ type, seq: id });
    });
  return { child, port, rpc, variant };
}

/** One route's load at a fixed rate; latencies of 2xx and of everything else, separately. */
function drive(url, rate, connections, seconds) {
  const ok = createHistogram();
  const refused = createHistogram();
  const statuses = {};
  return new Promise((resolve, reject) => {
    const instance = autocannon({ url, connections, overallRate: rate, duration: seconds, timeout: 30 }, (error, result) =>
      error ? reject(error) : resolve({ ok, refused, statuses, result }),
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      statuses[status] = (statuses[status] ?? 0) + 1;
      const us = Math.max(1, Math.round(ms * 1000));
      if (status >= 200 && status < 300) ok.record(us);
      else refused.record(us);
    });
  });
}

async function measure(server, seconds) {
  const base = `http://127.0.0.1:${server.port}`;
  await server.rpc('begin');
  const [heavy, light] = await Promise.all([
    drive(`${base}/heavy`, settings.heavyRate, settings.heavyConnections, seconds),
    drive(`${base}/light`, settings.lightRate, settings.lightConnections, seconds),
  ]);
  const end = await server.rpc('end');
  const route = ({ ok, refused, statuses, result }) => {
    const total = Object.values(statuses).reduce((a, b) => a + b, 0);
    const okCount = ok.count;
    const shed = statuses[503] ?? 0;
    return {
      // Sent but not answered by the end of the run: still queued in the server.
      sent: result.requests.sent,
      answered: total,
      okPerSec: okCount / result.duration,
      shedShare: total > 0 ? shed / total : Number.NaN,
      other: total - okCount - shed,
      errors: result.errors + result.timeouts,
      // No 2xx at all: latency unknown, shown as n/a (none answered within the run).
      p50: okCount > 0 ? ok.percentile(50) / 1000 : Number.NaN,
      p99: okCount > 0 ? ok.percentile(99) / 1000 : Number.NaN,
      shedP99: refused.count > 0 ? refused.percentile(99) / 1000 : Number.NaN,
    };
  };
  return { heavy: route(heavy), light: route(light), cpuPerSec: (end.cpu.user + end.cpu.system) / 1e6 / seconds };
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = (s.length - 1) / 2;
  return (s[Math.floor(mid)] + s[Math.ceil(mid)]) / 2;
};
const f1 = (n) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const f0 = (n) => (Number.isFinite(n) ? Math.round(n).toString() : 'n/a');
const pct = (n) => (Number.isFinite(n) ? `${(n * 100).toFixed(1)} %` : 'n/a');

async function benchFramework(framework) {
  const servers = [];
  try {
    for (const variant of CONFIGS[framework]) servers.push(await start(framework, variant));
    for (const s of servers) {
      process.stdout.write(`${framework}: warm-up ${LABELS[s.variant]}\n`);
      await measure(s, settings.warmup);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const runs = new Map(servers.map((s) => [s.variant, []]));
    for (let round = 1; round <= settings.rounds; round++) {
      const order = round % 2 === 1 ? servers : [...servers].reverse();
      for (const s of order) {
        const run = await measure(s, settings.duration);
        runs.get(s.variant).push(run);
        process.stdout.write(
          `${framework} round ${round} ${LABELS[s.variant].padEnd(34)} heavy ${f0(run.heavy.okPerSec)}/s ok, ${pct(run.heavy.shedShare)} shed, p99 ${f1(run.heavy.p99)} ms; ` +
            `light ${f0(run.light.okPerSec)}/s ok, ${pct(run.light.shedShare)} shed, p99 ${f1(run.light.p99)} ms\n`,
        );
        // Let the loop drain and the guard recover before the next configuration.
        await new Promise((r) => setTimeout(r, 1500));
      }
    }
    return { framework, runs };
  } finally {
    for (const s of servers) s.child.kill('SIGKILL');
  }
}

function table({ framework, runs }) {
  const lines = [
    `### ${framework}`,
    '',
    '| configuration | route | sent/s | answered/s | 2xx/s | p50 ms (2xx) | p99 ms (2xx) | shed (503 of answered) | p99 ms of the 503s | errors |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const [variant, list] of runs) {
    for (const route of ['heavy', 'light']) {
      const m = (k) => median(list.map((r) => r[route][k]));
      const other = list.reduce((n, r) => n + r[route].other + r[route].errors, 0);
      lines.push(
        `| ${LABELS[variant]} | /${route} | ${f0(m('sent') / settings.duration)} | ${f0(m('answered') / settings.duration)} | ${f0(m('okPerSec'))} | ${f1(m('p50'))} | ${f1(m('p99'))} | ${pct(m('shedShare'))} | ${f1(m('shedP99'))} | ${other} |`,
      );
    }
  }
  lines.push('');
  return lines.join('\n');
}

const started = new Date();
console.log(
  `shed benchmark: ${selected.join(', ')}; /heavy ${settings.heavyMs} ms of CPU at ${settings.heavyRate} req/s (${settings.heavyConnections} connections), ` +
    `/light at ${settings.lightRate} req/s (${settings.lightConnections} connections); ${settings.rounds} rounds × ${settings.duration} s; ` +
    `limit ${settings.delayMs} ms; Node ${process.version}, ${os.availableParallelism()} CPUs; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
);
const results = [];
for (const framework of selected) results.push(await benchFramework(framework));
const tables = results.map(table).join('\n');
console.log(`\n${tables}`);
if (!args['no-write']) {
  const pad = (n) => String(n).padStart(2, '0');
  const stamp = `${started.getFullYear()}-${pad(started.getMonth() + 1)}-${pad(started.getDate())}-${pad(started.getHours())}${pad(started.getMinutes())}`;
  const dir = path.join(HERE, 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `shed-${stamp}.md`);
  writeFileSync(
    file,
    [
      `# Overload guard under saturation, ${stamp}${args.quick ? ' (quick smoke run)' : ''}`,
      '',
      `- Node ${process.version}, ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? '?'}); load average after ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
      `- \`node shed.mjs${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\`: /heavy = ${settings.heavyMs} ms of busy CPU at ${settings.heavyRate} req/s offered ` +
        `(${settings.heavyConnections} connections), /light = a JSON answer at ${settings.lightRate} req/s (${settings.lightConnections} connections), ` +
        `both at once; ${settings.rounds} rounds × ${settings.duration} s, configurations alternated; medians over rounds`,
      `- shed: \`{ maxEventLoopDelayMs: ${settings.delayMs} }\` (sampled every 500 ms, p90 of the loop delay); loopsight with promises off`,
      '',
      tables,
    ].join('\n'),
  );
  console.log(`written to ${path.relative(process.cwd(), file)}`);
}
killAll();
process.exit(0);
