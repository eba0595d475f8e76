#!/usr/bin/env node
// Instructions per request, counted by valgrind's callgrind: the low-noise companion of run.mjs.
//
//   node instructions.mjs [--framework express|fastify|koa|hono]... [--node PATH] [--requests N]
//                         [--warmup N] [--parallel P] [--repeat R] [--only NAME]... [--no-write] [--json FILE]
//
// CPU time per request on these 2-core virtual machines moves by 10–15 % from one process to the
// next; an instruction count does not care what else the machine does, so the same server measured
// twice agrees within a fraction of a percent. Each configuration runs as
// `valgrind --tool=callgrind --separate-threads=yes node servers/<framework>.mjs <variant>`: the
// harness warms it up with --warmup requests, zeroes the counters, sends --requests requests and
// dumps them, then counts the same length of idle time and subtracts it (timers, the watchdog
// thread). Counts are user-space instructions (callgrind sees no kernel time: a ratio to bare is
// therefore larger than the same ratio in CPU time, whose bare figure includes the network stack).
//
// The stall watchdog and the loop delay sampler are turned off in the servers here
// (LOOPSIGHT_BENCH_REQUEST_PATH=1, servers/lib/variants.mjs): their work is per second, not per
// request, and valgrind's pauses would look like stalls to them. micro/idle.mjs measures them.

import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { frameworks, ROUTE } from './configs.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    framework: { type: 'string', multiple: true },
    node: { type: 'string' },
    requests: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '3000' },
    parallel: { type: 'string', default: '2' },
    repeat: { type: 'string', default: '1' },
    only: { type: 'string', multiple: true },
    connections: { type: 'string', default: '10' },
    'no-write': { type: 'boolean', default: false },
    json: { type: 'string' },
    keep: { type: 'string' },
    from: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(`usage: node instructions.mjs [options]
  --framework NAME   express, fastify, koa or hono; repeat or comma-separate (default: express, fastify, koa)
  --node PATH        the Node binary of the servers (default: this one)
  --requests N       measured requests per configuration (default 2000)
  --warmup N         unmeasured requests before them (default 3000: the JIT has optimized the request path)
  --parallel P       configurations under valgrind at once (default 2; counts do not depend on it)
  --repeat R         processes per configuration (default 1; the A/A control is the noise figure)
  --only NAME        these configurations (label or variant) with bare, its control and the floor
  --connections N    keep-alive connections of the load (default 10)
  --no-write         print only; --json FILE also writes every measurement
  --from FILE        measure nothing: tables and cells again from the --json FILE of a run
  --keep DIR         keep each process's callgrind profile of the measured requests in DIR
                     (callgrind_annotate reads them; JIT-compiled JavaScript shows as ???)`);
  process.exit(0);
}

function positiveInt(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`--${name} must be a positive integer (got ${JSON.stringify(value)})`);
    process.exit(2);
  }
  return n;
}
const settings = {
  requests: positiveInt('requests', args.requests),
  warmup: positiveInt('warmup', args.warmup),
  parallel: positiveInt('parallel', args.parallel),
  repeat: positiveInt('repeat', args.repeat),
  connections: positiveInt('connections', args.connections),
  node: args.node ? path.resolve(args.node) : process.execPath,
};
settings.nodeVersion = execFileSync(settings.node, ['--version'], { encoding: 'utf8' }).trim();
try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('valgrind is not installed (Debian: apt-get install valgrind)');
  process.exit(2);
}

const selected = (args.framework ?? ['express', 'fastify', 'koa']).flatMap((f) => f.split(',')).filter(Boolean);
for (const f of selected) {
  if (!Object.hasOwn(frameworks, f)) {
    console.error(`unknown framework ${JSON.stringify(f)}; known: ${Object.keys(frameworks).join(', ')}`);
    process.exit(2);
  }
}

/** The rows of issue 17: bare, its control, the floor, loopsight's, the context peers. */
const MEASURED = new Set([
  'bare',
  'als-floor',
  'loopsight',
  'loopsight-prometheus',
  'loopsight-promises-sampled-scaled',
  'cls-rtracer',
  'express-http-context',
  'request-context',
  'request-id-context-storage',
]);
const only = args.only?.flatMap((o) => o.split(',')).filter(Boolean);
function configsOf(framework) {
  return frameworks[framework].filter((c) => {
    if (c.route || c.execArgv || !MEASURED.has(c.variant)) return false;
    if (!only || c.variant === 'bare' || c.variant === 'als-floor') return true;
    return only.includes(c.label) || only.includes(c.variant);
  });
}

// ---------------------------------------------------------------------------------------------

const OUT_DIR = path.join(os.tmpdir(), `loopsight-callgrind-${process.pid}`);
mkdirSync(OUT_DIR, { recursive: true });
const children = new Set();
const cleanup = () => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(OUT_DIR, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `amount` GET requests over keep-alive connections, as fast as they are answered. */
async function drive(url, amount) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: settings.connections });
  let left = amount;
  let failed = 0;
  const one = () =>
    new Promise((resolve, reject) => {
      http
        .get(url, { agent }, (res) => {
          if (res.statusCode !== 200) failed++;
          res.resume().on('end', resolve).on('error', reject);
        })
        .on('error', reject);
    });
  try {
    await Promise.all(
      Array.from({ length: settings.connections }, async () => {
        while (left-- > 0) await one();
      }),
    );
  } finally {
    agent.destroy();
  }
  if (failed > 0) throw new Error(`${failed} of ${amount} requests did not answer 200`);
}

/** Instructions per thread of the callgrind dump number `n` of `pid`. */
function readDump(pid, n) {
  const prefix = `cg.${pid}.${n}-`;
  const threads = {};
  for (const file of readdirSync(OUT_DIR).filter((f) => f.startsWith(prefix))) {
    const text = readFileSync(path.join(OUT_DIR, file), 'utf8');
    threads[file.slice(prefix.length)] = Number(/^(?:summary|totals): (\d+)/m.exec(text)?.[1] ?? 0);
  }
  return threads;
}

const control = (pid, command) => execFileSync('callgrind_control', [command, String(pid)], { stdio: 'ignore', timeout: 60_000 });

async function measure(framework, config) {
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--separate-threads=yes',
      `--callgrind-out-file=${path.join(OUT_DIR, 'cg.%p')}`,
      settings.node,
      '--no-memory-reducer',
      // Compilation and GC on the main thread, in the order the code asks for them: with V8's
      // background threads, what was optimized by the measured phase depended on valgrind's
      // scheduling (the same floor server counted 85 K and 148 K instructions a request).
      '--single-threaded',
      path.join(HERE, 'servers', `${framework}.mjs`),
      config.variant,
    ],
    {
      cwd: HERE,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, NODE_ENV: 'production', LOOPSIGHT_BENCH_REQUEST_PATH: '1' },
    },
  );
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  try {
    const port = await Promise.race([
      new Promise((resolve) => child.on('message', (m) => m?.type === 'ready' && resolve(m.port))),
      new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`exited with ${code}: ${stderr}`)))),
      sleep(180_000).then(() => Promise.reject(new Error('not ready within 180 s'))),
    ]);
    const url = `http://127.0.0.1:${port}${config.route ?? ROUTE}`;
    await drive(url, settings.warmup);
    control(child.pid, '-z');
    let t = performance.now();
    await drive(url, settings.requests);
    const loadedMs = performance.now() - t;
    control(child.pid, '-d');
    control(child.pid, '-z');
    t = performance.now();
    await sleep(loadedMs);
    const idleMs = performance.now() - t;
    control(child.pid, '-d');
    if (args.keep) {
      mkdirSync(args.keep, { recursive: true });
      const name = `${framework}-${config.variant}-${child.pid}.cg`;
      copyFileSync(path.join(OUT_DIR, `cg.${child.pid}.1-01`), path.join(args.keep, name));
    }
    const loaded = readDump(child.pid, 1);
    const idle = readDump(child.pid, 2);
    const net = (thread) => (loaded[thread] - ((idle[thread] ?? 0) * loadedMs) / idleMs) / settings.requests;
    const threads = Object.keys(loaded);
    const main = threads.find((th) => th === '01') ?? threads.sort()[0];
    return {
      main: net(main),
      all: threads.reduce((sum, th) => sum + net(th), 0),
      idleShare: (idle[main] ?? 0) / Math.max(1, loaded[main]),
      reqPerSecUnderValgrind: settings.requests / (loadedMs / 1000),
    };
  } finally {
    child.kill('SIGKILL');
    children.delete(child);
  }
}

/** Runs `jobs` with at most settings.parallel at once. */
async function pool(jobs) {
  const results = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(settings.parallel, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]();
      }
    }),
  );
  return results;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** Counts this far above their configuration's median had a one-off (a compile or GC burst) in the measured window. */
const ONE_OFF = 1.08;

/** The table rows (medians) and issue 17's cells of one framework's processes. */
function summarize(framework, runs) {
  const configs = configsOf(framework);
  for (const r of runs) {
    const own = median(runs.filter((x) => x.label === r.label).map((x) => x.main));
    r.oneOff = r.main > own * ONE_OFF;
  }
  const of = (label, key = 'main') => median(runs.filter((r) => r.label === label).map((r) => r[key]));
  const bare = of('bare');
  const floor = of('als-floor');
  const rows = configs
    .filter((c) => runs.some((r) => r.label === c.label))
    .map((c) => {
      const main = of(c.label);
      return {
        label: c.label,
        main,
        all: of(c.label, 'all'),
        ratio: main / bare,
        aboveFloor: c.variant === 'bare' || c.variant === 'als-floor' ? undefined : (main - floor) / bare,
      };
    });
  return { framework, rows, runs, cells: cellsOf(runs, configs, bare) };
}

let started = new Date();
let results = [];
if (args.from) {
  const saved = JSON.parse(readFileSync(args.from, 'utf8'));
  Object.assign(settings, saved.settings);
  started = new Date(saved.started);
  results = saved.results.map(({ framework, runs }) => summarize(framework, runs));
} else {
  console.log(
    `loopsight instructions per request (callgrind): ${selected.join(', ')}; servers on Node ${settings.nodeVersion}; ` +
      `${settings.warmup} warm-up + ${settings.requests} measured requests, ${settings.connections} connections, ${settings.repeat} process(es) per configuration`,
  );
  for (const framework of selected) {
    const jobs = configsOf(framework).flatMap((config) =>
      Array.from({ length: settings.repeat }, (_, i) => async () => {
        const m = await measure(framework, config);
        console.log(
          `${framework} ${config.label.padEnd(44)} ${Math.round(m.main).toString().padStart(8)} main-thread instr/req, ${Math.round(m.all).toString().padStart(8)} all threads (process ${i + 1})`,
        );
        return { label: config.label, variant: config.variant, control: Boolean(config.control), ...m };
      }),
    );
    results.push(summarize(framework, await pool(jobs)));
  }
}

/**
 * Issue 17's cells from every pair of processes of the two configurations a cell compares: the
 * median of the pairs and their range, which holds both processes' spread (with one process each
 * it is one value). Processes with a one-off in their measured window are left out (listed in the
 * results file). A cell is met or missed only when its whole range is.
 */
function cellsOf(runs, configs, bare) {
  const mains = (pick) => runs.filter((r) => !r.oneOff && pick(r)).map((r) => r.main);
  const pairs = (a, b, f) => a.flatMap((x) => b.map((y) => f(x, y)));
  const cells = [];
  const cell = (what, values, ok) => {
    if (values.length === 0) return;
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const verdict = ok(lo) && ok(hi) ? 'met' : !ok(lo) && !ok(hi) ? '**missed**' : 'not resolved (the range crosses the target)';
    cells.push({ what, median: median(values), lo, hi, verdict });
  };
  const bares = mains((r) => r.variant === 'bare' && !r.control);
  const loopsight = mains((r) => r.variant === 'loopsight');
  cell(
    'A/A control ×bare (1.00 ± 0.02)',
    pairs(
      mains((r) => r.control),
      bares,
      (a, b) => a / b,
    ),
    (v) => Math.abs(v - 1) <= 0.02,
  );
  const above = (variant, base, limit, what) =>
    cell(
      what,
      pairs(
        mains((r) => r.variant === variant),
        base,
        (a, b) => (a - b) / bare,
      ),
      (v) => v <= limit,
    );
  above(
    'loopsight',
    mains((r) => r.variant === 'als-floor'),
    0.02,
    'loopsight defaults above the ALS floor, share of bare (≤ +0.02)',
  );
  above('loopsight-prometheus', loopsight, 0.01, '+ Prometheus exporter above the defaults (≤ +0.01)');
  above('loopsight-promises-sampled-scaled', loopsight, 0.02, 'promises sampled (1/30) above the defaults (≤ +0.02)');
  for (const peer of configs.filter((c) => c.kind === 'peer' && c.echoesId)) {
    cell(
      `loopsight defaults ÷ ${peer.label} (< 1.00)`,
      pairs(
        loopsight,
        mains((r) => r.variant === peer.variant),
        (a, b) => a / b,
      ),
      (v) => v < 1,
    );
  }
  return cells;
}

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmtCell = (c) => {
  const f = (n) => (c.what.includes('share') || c.what.includes('above') ? sign(n) : n.toFixed(3));
  return `| ${c.what} | ${f(c.median)} | ${f(c.lo)} to ${f(c.hi)} | ${c.verdict} |`;
};
const sign = (n) => (n === undefined ? '' : `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(3)}`);
const tables = results
  .map(({ framework, rows, cells }) =>
    [
      `### ${framework}`,
      '',
      '| configuration | main thread, instructions/request | ×bare | above the ALS floor, share of bare | all threads |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.label} | ${fmtInt(r.main)} | ${r.ratio.toFixed(3)} | ${sign(r.aboveFloor)} | ${fmtInt(r.all)} |`),
      '',
      `Targets of issue 17 (main-thread instructions per request; median and range over every pair of processes):`,
      '',
      '| cell | median | range | |',
      '| --- | ---: | ---: | --- |',
      ...cells.map(fmtCell),
      '',
    ].join('\n'),
  )
  .join('\n');
console.log(`\n${tables}`);

const pad = (n) => String(n).padStart(2, '0');
const stamp = `${started.getFullYear()}-${pad(started.getMonth() + 1)}-${pad(started.getDate())}-${pad(started.getHours())}${pad(started.getMinutes())}`;
if (!args['no-write']) {
  const file = path.join(HERE, 'results', `instructions-${stamp}-node${settings.nodeVersion.slice(1).split('.')[0]}.md`);
  writeFileSync(
    file,
    [
      `# Instructions per request, ${stamp}`,
      '',
      `- valgrind ${execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim()} (callgrind), servers on Node ${settings.nodeVersion}`,
      `- ${settings.warmup} warm-up requests, then ${settings.requests} measured over ${settings.connections} keep-alive connections; the same length of idle time counted and subtracted; ${settings.repeat} process(es) per configuration (median)`,
      '- stall watchdog and loop delay sampler off in every loopsight configuration (per-second work, measured by micro/idle.mjs)',
      `- cells: median and range over every pair of processes of the two rows a cell compares, leaving out a process with a one-off in its measured window (a count above ${ONE_OFF} × its row's median: a compile or GC burst that landed there)`,
      '',
      tables,
      '<details><summary>Every process</summary>',
      '',
      '| framework | configuration | main thread | all threads | idle share of main | req/s under valgrind | one-off in the window |',
      '| --- | --- | ---: | ---: | ---: | ---: | --- |',
      ...results.flatMap(({ framework, runs }) =>
        runs.map(
          (r) =>
            `| ${framework} | ${r.label} | ${fmtInt(r.main)} | ${fmtInt(r.all)} | ${(r.idleShare * 100).toFixed(1)} % | ${Math.round(r.reqPerSecUnderValgrind)} | ${r.oneOff ? `yes (> ${ONE_OFF} × its row's median: left out of the cells)` : ''} |`,
        ),
      ),
      '</details>',
      '',
    ].join('\n'),
  );
  console.log(`written to ${path.relative(process.cwd(), file)}`);
}
if (args.json) writeFileSync(args.json, JSON.stringify({ settings, started: started.toISOString(), results }, null, 2));
process.exit(0);
