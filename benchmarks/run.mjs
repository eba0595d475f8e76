#!/usr/bin/env node
// Overhead of the loopsight adapters against the bare frameworks and a hand-written
// AsyncLocalStorage floor. See docs/benchmarks.md for what is measured and how to read it.
//
//   node run.mjs [--quick] [--framework express|fastify|koa]... [--rounds N] [--duration S]
//                [--connections N] [--warmup S] [--rate R] [--time-limit S] [--no-write]
//
// Every configuration is its own server process (servers/<framework>.mjs <variant>) on 127.0.0.1;
// autocannon runs here, in the parent. Only loopback traffic.

import { execFileSync, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createHistogram, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { frameworks, ROUTE, ROUTES } from './configs.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
// Generous: CI's smoke run starts servers at a low CPU priority beside the timing-sensitive test
// runs (NestJS took over 20 s to answer at a load average of 10, and a NestJS-on-Fastify start
// over 60 s at nice 19).
const READY_TIMEOUT_MS = 180_000;
const IPC_TIMEOUT_MS = 30_000;
const PAUSE_MS = 200;

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    framework: { type: 'string', multiple: true },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
    warmup: { type: 'string' },
    preload: { type: 'string' },
    rate: { type: 'string' },
    'time-limit': { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    json: { type: 'string' },
    'max-foreign': { type: 'string' },
    only: { type: 'string', multiple: true },
    pin: { type: 'boolean', default: false },
    'node-option': { type: 'string', multiple: true },
    'memory-reducer': { type: 'boolean', default: false },
    priority: { type: 'string' },
    fresh: { type: 'boolean', default: false },
    slices: { type: 'string' },
    node: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(`usage: node run.mjs [options]
  --quick               smoke run: 1 round of 1 s, no warm-up (about a minute for all three frameworks)
  --framework NAME      express, fastify, koa or hono; repeat or comma-separate (default: all)
  --rounds N            measured rounds per configuration (default 40)
  --duration S          seconds per measured run (default 1)
  --connections N       autocannon connections (default 50)
  --warmup S            seconds of unmeasured load per server before the rounds, 0 for none (default 5)
  --preload S           seconds of unmeasured load right before every measured run, 0 for none (default 0.5;
                        0 with --quick): a server that waited ~30 s for its turn costs up to twice the CPU
                        per request in its first second of load
  --rate R              fixed total request rate (autocannon overallRate) instead of saturating load
  --time-limit S        abort after S seconds (default: three times the expected time, at least 5 minutes)
  --no-write            print the table only; do not write benchmarks/results/
  --priority=N          scheduling priority (nice value, -20..19) of the servers and the load generator;
                        negative values need root (default 0: unchanged)
  --max-foreign F       other processes may use at most F cores during a run, else it is measured
                        again (3 tries) after waiting up to 30 s for quiet; 0 turns this off (default 0.1;
                        0 with --quick)
  --only NAME           measure only these configurations (label or variant; bare, its A/A control and
                        the baselines they need always), including
                        the optional ones of configs.mjs; repeat or comma-separate
  --node-option FLAG    a Node or V8 flag for every server, e.g. --node-option=--max-semi-space-size=32; repeat
  --memory-reducer      leave V8's memory reducer on in the servers (default: --no-memory-reducer, because
                        alternation leaves each server idle long enough for V8 to shrink its heap)
  --pin                 pin the load generator to CPU 0 and the servers to CPU 1 (Linux, taskset)
  --fresh               a new process per configuration per round (started, warmed up for --warmup s,
                        measured in --slices, stopped), in an order shuffled every round: per-process offsets (JIT
                        decisions, heap sizing, memory layout: up to 15 % of CPU per request, lasting for
                        the life of a process) then vary across rounds and cancel in the medians instead
                        of biasing a configuration for the whole run (default warm-up 1 s)
  --slices K            with --fresh: each configuration's round is K runs of --duration (each after
                        2,000 unmeasured requests instead of --preload), interleaved with the other
                        configurations' (all up at once), summed: a slow spell of the machine falls on
                        every configuration alike (default 3)
  --node PATH           the Node binary of the servers (default: this one); e.g. Node 24's
  --json FILE           also write every run and the summaries as JSON to FILE`);
  process.exit(0);
}

/** A positive number option (an integer unless `fraction`); exits with a message otherwise. */
function positive(name, value, fallback, fraction = false) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!(fraction ? Number.isFinite(n) : Number.isInteger(n)) || n <= 0) {
    console.error(`--${name} must be a positive ${fraction ? 'number' : 'integer'} (got ${JSON.stringify(value)})`);
    process.exit(2);
  }
  return n;
}
const positiveInt = (name, value, fallback) => positive(name, value, fallback);
const positiveNumber = (name, value, fallback) => positive(name, value, fallback, true);

const settings = {
  quick: args.quick,
  rounds: positiveInt('rounds', args.rounds, args.quick ? 1 : 40),
  duration: positiveNumber('duration', args.duration, 1),
  connections: positiveInt('connections', args.connections, 50),
  rate: positiveInt('rate', args.rate, 0),
};
// A smoke run does not wait for a quiet machine: it only proves that the harness works.
settings.maxForeign = Number(args['max-foreign'] ?? (args.quick ? 0 : 0.1));
if (!Number.isFinite(settings.maxForeign) || settings.maxForeign < 0) {
  console.error(`--max-foreign must be a number of cores, 0 or more (got ${JSON.stringify(args['max-foreign'])})`);
  process.exit(2);
}
settings.priority = Number(args.priority ?? 0);
if (!Number.isInteger(settings.priority) || settings.priority < -20 || settings.priority > 19) {
  console.error(`--priority must be an integer from -20 to 19 (got ${JSON.stringify(args.priority)})`);
  process.exit(2);
}
if (settings.priority !== 0) os.setPriority(settings.priority);
if (args.pin) execFileSync('taskset', ['-a', '-cp', '0', String(process.pid)], { stdio: 'ignore' });
// Each server idles while the others are measured (a minute and more in a full round), and V8's
// memory reducer shrinks an idle heap: its next run then scavenged a young generation grown from
// the minimum and cost up to twice the CPU per request (seen as runs at 320 µs against 170 µs,
// with 20 MB less RSS). A service under steady load does not go through that, so it is off.
const NODE_OPTIONS = [...(args['memory-reducer'] ? [] : ['--no-memory-reducer']), ...(args['node-option'] ?? [])];
settings.fresh = args.fresh;
settings.slices = positiveInt('slices', args.slices, args.fresh ? 3 : 1);
settings.warmup = args.warmup === '0' ? 0 : positiveNumber('warmup', args.warmup, args.quick ? 0 : args.fresh ? 1 : 5);
settings.node = args.node ? path.resolve(args.node) : process.execPath;
settings.nodeVersion =
  settings.node === process.execPath ? process.version : execFileSync(settings.node, ['--version'], { encoding: 'utf8' }).trim();
// Fresh servers idle only while the other configurations' slices run: a short wake-up is enough.
settings.preload = Number(args.preload ?? (args.quick ? 0 : 0.5));
if (!Number.isFinite(settings.preload) || settings.preload < 0) {
  console.error(`--preload must be a number of seconds, 0 or more (got ${JSON.stringify(args.preload)})`);
  process.exit(2);
}

const selected = (args.framework ?? Object.keys(frameworks)).flatMap((f) => f.split(',')).filter(Boolean);
for (const f of selected) {
  if (!Object.hasOwn(frameworks, f)) {
    console.error(`unknown framework ${JSON.stringify(f)}; known: ${Object.keys(frameworks).join(', ')}`);
    process.exit(2);
  }
}

// Expected wall time: warm-up and rounds of every configuration, plus pauses and start-up.
// A value that is a whole label (labels may hold commas) is taken as it is; others are split on commas.
const labels = new Set(Object.values(frameworks).flatMap((list) => list.map((c) => c.label)));
const only = args.only?.flatMap((o) => (labels.has(o) ? [o] : o.split(','))).filter(Boolean);
const configsOf = (framework) => {
  const list = frameworks[framework];
  const picked = list.filter((c, i) => {
    // bare and its A/A control always: without the control, a ratio has no noise floor.
    if (i === 0 || c.control) return true;
    if (only) return only.includes(c.label) || only.includes(c.variant);
    return !c.optional;
  });
  // The baseline of every picked configuration too.
  const bases = new Set(picked.map((c) => c.base).filter(Boolean));
  return list.filter((c) => picked.includes(c) || bases.has(c.label));
};
// A fresh server costs its start (≈ 0.6 s), its warm-up and its stop every round.
const perRun = () =>
  settings.fresh
    ? settings.slices * (Math.ceil(settings.duration) + 0.5) + settings.warmup + 1.5
    : settings.duration + settings.preload + 0.6;
const expectedSeconds = selected.reduce((sum, f) => {
  const n = configsOf(f).length;
  return sum + 5 + (settings.fresh ? 0 : n * (settings.warmup + 0.5)) + settings.rounds * n * perRun();
}, 0);
// Retries and waits for a quiet machine can stretch that; the limit leaves room for them.
const timeLimit = positiveInt('time-limit', args['time-limit'], Math.max(300, Math.ceil(expectedSeconds * 3)));
// The run stops starting rounds once a framework's share of the time limit is spent, and reports
// the rounds it has; the hard stop below (every process killed, nothing written) is the last resort.
const HARD_STOP_GRACE_S = 90;
const secondsOf = (framework) => {
  const n = configsOf(framework).length;
  return 5 + (settings.fresh ? 0 : n * (settings.warmup + 0.5)) + settings.rounds * n * perRun();
};

// ---------------------------------------------------------------------------------------------
// Child processes: every one is killed on exit, on a signal, on an error and at the time limit.

const children = new Set();

function killAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the servers`);
    killAll();
    process.exit(130);
  });
}
process.on('uncaughtException', (error) => {
  console.error(error);
  killAll();
  process.exit(1);
});
process.on('unhandledRejection', (error) => {
  console.error(error);
  killAll();
  process.exit(1);
});
setTimeout(
  () => {
    console.error(`\ntime limit of ${timeLimit} s (+ ${HARD_STOP_GRACE_S} s grace) reached: stopping`);
    killAll();
    process.exit(1);
  },
  (timeLimit + HARD_STOP_GRACE_S) * 1000,
).unref();

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Forks one server and resolves once it listens: { child, port, rpc(type), stop() }. */
async function startServer(framework, config) {
  const script = path.join(HERE, 'servers', `${framework}.mjs`);
  const child = fork(script, [config.variant], {
    cwd: HERE,
    execPath: settings.node,
    execArgv: [...(config.execArgv ?? []), ...NODE_OPTIONS],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  children.add(child);
  if (settings.priority !== 0) os.setPriority(child.pid, settings.priority);
  if (args.pin) execFileSync('taskset', ['-a', '-cp', '1', String(child.pid)], { stdio: 'ignore' });
  const pending = new Map();
  let seq = 0;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const ready = new Promise((resolve, reject) => {
    child.once('error', reject);
    exited.then((code) => reject(new Error(`${framework} ${config.variant} exited with ${code} before it was ready`)));
    child.on('message', (message) => {
      if (message?.type === 'ready') resolve(message.port);
      const waiter = pending.get(message?.seq);
      if (waiter) {
        pending.delete(message.seq);
        waiter(message);
      }
    });
  });
  const port = await withTimeout(ready, READY_TIMEOUT_MS, `${framework} ${config.variant} start`);
  exited.then(() => {
    for (const [, waiter] of pending) waiter({ type: 'exited' });
  });

  const rpc = (type) => {
    const id = ++seq;
    const answer = new Promise((resolve) => pending.set(id, resolve));
    child.send({ type, seq: id });
    return withTimeout(answer, IPC_TIMEOUT_MS, `${framework} ${config.variant} ${type}`).then((message) => {
      if (message.type === 'exited') throw new Error(`${framework} ${config.variant} exited during a run`);
      return message;
    });
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.send({ type: 'stop' });
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    children.delete(child);
  };
  return { child, port, rpc, stop, url: `http://${HOST}:${port}${config.route ?? ROUTE}` };
}

/** One request by hand before any load: the route answers, and the id is echoed where it should be. */
async function verify(framework, config, server) {
  const fail = (why) => {
    throw new Error(`${framework} ${config.label}: ${why}`);
  };
  const route = config.route ?? ROUTE;
  // A configuration that sheds answers 503 while the loop is late, as on a machine that starves
  // the server (a niced smoke run beside CI's tests: stalls of 1–3 s): asked again for up to 60 s.
  let res = await fetch(server.url, { headers: { 'x-request-id': 'bench-check-1' } });
  for (const until = Date.now() + 60_000; res.status === 503 && config.variant.includes('shed') && Date.now() < until; ) {
    await res.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    res = await fetch(server.url, { headers: { 'x-request-id': 'bench-check-1' } });
  }
  const body = await res.json();
  if (res.status !== 200) fail(`GET ${route} answered ${res.status}`);
  if (!isDeepStrictEqual(body, ROUTES[route])) fail(`GET ${route} answered ${JSON.stringify(body)}`);
  const echoed = res.headers.get('x-request-id');
  if (config.echoesId && echoed !== 'bench-check-1') fail(`x-request-id was not echoed (got ${echoed})`);
  if (!config.echoesId && echoed !== null) fail(`x-request-id was set by a configuration that should not (${echoed})`);
  if (config.echoesId) {
    const fresh = await fetch(server.url);
    await fresh.arrayBuffer();
    if (!fresh.headers.get('x-request-id')) fail('no x-request-id was generated for a request without one');
  }
}

// ---------------------------------------------------------------------------------------------
// Load

/**
 * One autocannon run; latency percentiles come from our own µs histogram (autocannon's are whole ms).
 * autocannon counts a duration in whole seconds (0.2 runs for 1 s); `amount` stops after that many requests.
 */
function load(url, seconds, amount) {
  const histogram = createHistogram();
  return new Promise((resolve, reject) => {
    const options = { url, connections: settings.connections, pipelining: 1, timeout: 10 };
    if (amount) options.amount = amount;
    else options.duration = seconds;
    if (settings.rate) options.overallRate = settings.rate;
    const instance = autocannon(options, (error, result) => {
      if (error) reject(error);
      else resolve({ result, histogram });
    });
    instance.on('response', (_client, _status, _bytes, responseTimeMs) => {
      histogram.record(Math.max(1, Math.round(responseTimeMs * 1000)));
    });
  });
}

/**
 * `amount` requests over `settings.connections` keep-alive connections, as fast as they are answered:
 * a wake-up shorter than autocannon's shortest run (it counts in whole seconds, `amount` included).
 */
async function wake(url, amount) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: settings.connections });
  let left = amount;
  const one = () =>
    new Promise((resolve, reject) => {
      http.get(url, { agent }, (res) => res.resume().on('end', resolve).on('error', reject)).on('error', reject);
    });
  const worker = async () => {
    while (left-- > 0) await one();
  };
  try {
    await Promise.all(Array.from({ length: settings.connections }, worker));
  } finally {
    agent.destroy();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Other processes on the machine (a build, a test run) distort every figure here. /proc/stat says
// how much CPU the whole machine used; minus what the harness and the measured server used, that is
// the foreign load, in cores. Before a run we wait (a while) for it to drop below the threshold, and
// a run during which it rose above it is measured again (a few times at most).
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const QUIET_SAMPLE_MS = 300;
const PRELOAD_REQUESTS = 2000;
/** When the last run without foreign load ended (Date.now()). */
let lastCleanRunAt = 0;
const QUIET_WAIT_MAX_MS = 30_000;
const MAX_ATTEMPTS = 3;

/** CPU time the whole machine has spent busy since boot, in µs; undefined where /proc/stat is not. */
function machineBusyMicros() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, _idle, _iowait, irq, softirq, steal = 0] = fields;
    return ((user + nice + system + irq + softirq + steal) * 1e6) / CLK_TCK;
  } catch {
    return undefined;
  }
}

const cpuMicros = (usage) => usage.user + usage.system;

/** Foreign load (cores) over a window in which only the harness itself ran, plus `others` µs. */
function foreignSince(mark) {
  const busy = machineBusyMicros();
  if (busy === undefined || mark.busy === undefined) return undefined;
  const wall = (performance.now() - mark.at) * 1000;
  const ours = cpuMicros(process.cpuUsage(mark.self)) + (serversCpuMicros() - mark.servers);
  return Math.max(0, busy - mark.busy - ours) / wall;
}

function markNow() {
  return { busy: machineBusyMicros(), self: process.cpuUsage(), servers: serversCpuMicros(), at: performance.now() };
}

/**
 * CPU time of every server this harness started, all threads, in µs (Linux: the scheduler's ns
 * counters in /proc/<pid>/task/<tid>/schedstat; clock ticks would be too coarse for 1 s windows).
 * The servers that wait their turn are not idle: loopsight's stall watchdog and sampler wake up
 * every few ms, ≈ 1.6 % of a core per idle server here, which must not count as other processes' load.
 */
function serversCpuMicros() {
  let ns = 0;
  for (const child of children) {
    try {
      for (const tid of readdirSync(`/proc/${child.pid}/task`)) {
        ns += Number(readFileSync(`/proc/${child.pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]) || 0;
      }
    } catch {
      // exited, or not Linux
    }
  }
  return ns / 1000;
}

/** CPU time of one thread, in µs (NaN where /proc is not). */
function threadCpuMicros(pid, tid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]) / 1000;
  } catch {
    return Number.NaN;
  }
}

/** Waits until other processes use less than the threshold, for QUIET_WAIT_MAX_MS at most. */
async function waitForQuiet() {
  if (!settings.maxForeign) return 0;
  // A run that just ended clean says as much as a sample would (slices follow each other closely).
  if (Date.now() - lastCleanRunAt < QUIET_SAMPLE_MS) return 0;
  const started = Date.now();
  for (;;) {
    const mark = markNow();
    await sleep(QUIET_SAMPLE_MS);
    const foreign = foreignSince(mark);
    if (foreign === undefined || foreign <= settings.maxForeign || Date.now() - started > QUIET_WAIT_MAX_MS) {
      return Date.now() - started;
    }
  }
}

/** One measured run: the server's CPU and peak RSS around an autocannon run of settings.duration. */
async function measureOnce(server) {
  const waitedMs = await waitForQuiet();
  // Wake the server up: after waiting for its turn, its first second of load costs more (see --preload).
  // Fresh servers idle only while the other configurations' slices run: a short wake-up is enough.
  if (settings.fresh && !settings.quick) await wake(server.url, PRELOAD_REQUESTS);
  else if (settings.preload > 0) await load(server.url, settings.preload);
  await server.rpc('begin');
  const mark = markNow();
  const main0 = threadCpuMicros(server.child.pid, server.child.pid);
  const { result, histogram } = await load(server.url, settings.duration);
  const end = await server.rpc('end');
  const mainCpu = threadCpuMicros(server.child.pid, server.child.pid) - main0;
  const serverCpu = cpuMicros(end.cpu);
  const served = end.requests;
  return {
    reqPerSec: result.requests.total / result.duration,
    p50: histogram.percentile(50) / 1000,
    p99: histogram.percentile(99) / 1000,
    cpuPerReq: served > 0 ? serverCpu / served : Number.NaN,
    // The main thread alone: the request path, without GC helpers, the watchdog or libuv's pool.
    mainCpuPerReq: served > 0 ? mainCpu / served : Number.NaN,
    cpuMicros: serverCpu,
    mainMicros: mainCpu,
    seconds: result.duration,
    cpuUser: end.cpu.user,
    cpuSystem: end.cpu.system,
    peakRssMB: end.peakRss / 2 ** 20,
    rssEndMB: end.rss / 2 ** 20,
    served,
    completed: result.requests.total,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    foreign: foreignSince(mark),
    waitedMs,
  };
}

/** measureOnce, again while other processes took more than the threshold (MAX_ATTEMPTS in all). */
async function measure(server, what) {
  for (let attempt = 1; ; attempt++) {
    const run = await measureOnce(server);
    run.attempts = attempt;
    if (run.foreign !== undefined && run.foreign <= settings.maxForeign) lastCleanRunAt = Date.now();
    if (!settings.maxForeign || run.foreign === undefined || run.foreign <= settings.maxForeign || attempt >= MAX_ATTEMPTS) {
      run.contaminated = settings.maxForeign > 0 && run.foreign > settings.maxForeign;
      return run;
    }
    process.stdout.write(`${what}: other processes used ${(run.foreign * 100).toFixed(0)} % of a core during the run; measuring again\n`);
    await sleep(PAUSE_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics

function quantile(values, q) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}
const median = (values) => quantile(values, 0.5);

/**
 * A distribution-free 95 % confidence interval for the median: the order statistics around n/2
 * at ±1.96 √n / 2 ranks. With fewer than 6 values there is none.
 */
function medianCi(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n < 6) return [Number.NaN, Number.NaN];
  const half = (1.96 * Math.sqrt(n)) / 2;
  const lo = Math.max(1, Math.floor(n / 2 - half));
  const hi = Math.min(n, Math.ceil(n / 2 + 1 + half));
  return [sorted[lo - 1], sorted[hi - 1]];
}

const METRICS = ['reqPerSec', 'p50', 'p99', 'cpuPerReq', 'mainCpuPerReq', 'peakRssMB'];

// Ratios are paired: each run is compared with the baseline run of the same round (`bare`, or the
// configuration's `base`), then the median is taken over rounds. The machine's speed drifts over
// tens of seconds; pairing within a round cancels most of that drift, which a ratio of two medians
// would not.
const RATIOS = {
  reqRatio: (run, base) => run.reqPerSec / base.reqPerSec,
  p99Ratio: (run, base) => run.p99 / base.p99,
  cpuRatio: (run, base) => run.cpuPerReq / base.cpuPerReq,
  mainCpuRatio: (run, base) => run.mainCpuPerReq / base.mainCpuPerReq,
  rssDelta: (run, base) => run.peakRssMB - base.peakRssMB,
};

const FLOOR = 'als-floor';
const LOOPSIGHT = 'loopsight'; // the variant of "loopsight defaults" (promises off)

/** Median and 95 % interval over rounds of f(run of `label`, run of `other`) in the same round. */
function paired(runs, rounds, label, other, f) {
  const perRound = rounds.map((round) => {
    const run = runs.find((r) => r.round === round && r.label === label);
    const base = runs.find((r) => r.round === round && r.label === other);
    return run && base ? f(run, base) : Number.NaN;
  });
  return { median: median(perRound), ci: medianCi(perRound) };
}

function summarize(configs, runs) {
  const bareLabel = configs[0].label;
  const rounds = [...new Set(runs.map((r) => r.round))];
  const last = (label) => runs.filter((r) => r.label === label).at(-1);
  const floor = configs.find((c) => c.variant === FLOOR && !c.route);
  const summary = configs.map((config) => {
    const baseLabel = config.base ?? bareLabel;
    const mine = runs.filter((r) => r.label === config.label);
    const s = { config, baseLabel, problems: mine.reduce((n, r) => n + r.errors + r.timeouts + r.non2xx, 0) };
    for (const m of METRICS) s[m] = median(mine.map((r) => r[m]));
    for (const [name, of] of Object.entries(RATIOS)) {
      const { median: m, ci } = paired(runs, rounds, config.label, baseLabel, of);
      s[name] = m;
      s[`${name}Ci`] = ci;
    }
    // RSS once the run is over (the end of the last round), against the baseline's.
    s.rssEndMB = last(config.label)?.rssEndMB ?? Number.NaN;
    s.rssEndDelta = s.rssEndMB - (last(baseLabel)?.rssEndMB ?? Number.NaN);
    // CPU per request above the ALS floor, as a share of bare's (same round): the "within 0.01 of the floor" target.
    if (floor && !config.route && config.label !== floor.label && config.label !== bareLabel && !config.control) {
      const gap = paired(runs, rounds, config.label, floor.label, (run, f) => {
        const base = runs.find((r) => r.round === run.round && r.label === bareLabel);
        return base ? (run.cpuPerReq - f.cpuPerReq) / base.cpuPerReq : Number.NaN;
      });
      s.floorGap = gap.median;
      s.floorGapCi = gap.ci;
    }
    return s;
  });
  // loopsight defaults against every peer: CPU per request, paired in the round.
  const mine = configs.find((c) => c.variant === LOOPSIGHT && !c.route);
  const peers = mine
    ? configs
        .filter((c) => c.kind === 'peer')
        .map((peer) => {
          const cpu = paired(runs, rounds, mine.label, peer.label, (a, b) => a.cpuPerReq / b.cpuPerReq);
          const req = paired(runs, rounds, mine.label, peer.label, (a, b) => a.reqPerSec / b.reqPerSec);
          return { peer, loopsight: mine, cpu, req };
        })
    : [];
  const control = summary.find((s) => s.config.control);
  const noise = control
    ? {
        req: Math.abs(control.reqRatio - 1),
        p99: Math.abs(control.p99Ratio - 1),
        cpu: Math.abs(control.cpuRatio - 1),
        rss: Math.abs(control.rssDelta),
      }
    : undefined;
  const contaminated = runs.filter((r) => r.contaminated).length;
  const retried = runs.filter((r) => r.attempts > 1).length;
  // Issue 17's increments, paired in the round, in units of bare's CPU per request.
  const labelOf = (variant) => configs.find((c) => c.variant === variant && !c.route)?.label;
  const increment = (variant, over) => {
    const a = labelOf(variant);
    const b = labelOf(over);
    if (!a || !b) return undefined;
    return paired(runs, rounds, a, b, (run, other) => {
      const base = runs.find((r) => r.round === run.round && r.label === bareLabel);
      return base ? (run.cpuPerReq - other.cpuPerReq) / base.cpuPerReq : Number.NaN;
    });
  };
  const increments = {
    prometheus: increment('loopsight-prometheus', LOOPSIGHT),
    sampled: increment('loopsight-promises-sampled-scaled', LOOPSIGHT),
  };
  return { summary, peers, noise, contaminated, retried, increments, attribution: attribute(configs, runs, rounds, bareLabel) };
}

// Issue 27: the whole-process CPU of each part of loopsight's defaults, as the difference between
// two configurations measured in the same round (µs per request and a share of bare's), the main
// thread's beside it. A part is listed when both of its configurations were measured.
const DEFAULTS = 'loopsight-promises-sampled';
const PARTS = [
  ['A/A control (bare measured again)', 'control', 'bare'],
  ['loopLag: watchdog thread + heartbeat + delay sampler', DEFAULTS, 'defaults-no-looplag'],
  ['stall watchdog (thread + heartbeat), sampler kept', DEFAULTS, 'defaults-no-watchdog'],
  ['loop delay sampler (10 ms timer, 10 s window)', 'defaults-no-watchdog', 'defaults-no-looplag'],
  ['captureStacks (a stack taken at each stall)', DEFAULTS, 'defaults-no-stacks'],
  ['promise tracker, sampled 1 s/30 s', DEFAULTS, LOOPSIGHT],
  ['the rest above the floor (defaults, loopLag off − als-floor)', 'defaults-no-looplag', FLOOR],
  ['defaults above the floor (all of it)', DEFAULTS, FLOOR],
];

function attribute(configs, runs, rounds, bareLabel) {
  const labelOf = (variant) => {
    if (variant === 'bare') return bareLabel;
    if (variant === 'control') return configs.find((c) => c.control)?.label;
    return configs.find((c) => c.variant === variant && !c.route)?.label;
  };
  const out = [];
  for (const [part, withIt, without] of PARTS) {
    const a = labelOf(withIt);
    const b = labelOf(without);
    if (!a || !b) continue;
    const diff = (key, share) =>
      paired(runs, rounds, a, b, (run, other) => {
        const d = run[key] - other[key];
        if (!share) return d;
        const base = runs.find((r) => r.round === run.round && r.label === bareLabel);
        return base ? d / base[key] : Number.NaN;
      });
    out.push({
      part,
      a,
      b,
      us: diff('cpuPerReq', false),
      share: diff('cpuPerReq', true),
      mainUs: diff('mainCpuPerReq', false),
      mainShare: diff('mainCpuPerReq', true),
      // The other threads: the watchdog's worker, GC helpers, libuv's pool.
      otherUs: paired(runs, rounds, a, b, (run, other) => run.cpuPerReq - run.mainCpuPerReq - (other.cpuPerReq - other.mainCpuPerReq)),
    });
  }
  return out.length > 1 ? out : [];
}

function attributionTable(attribution) {
  if (attribution.length === 0) return [];
  const f1 = (n) => (Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(1)}` : 'n/a');
  const fp = (n) => (Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${Math.abs(n * 100).toFixed(1)} %` : 'n/a');
  const range = (m, f) => (Number.isFinite(m.ci[0]) ? `${f(m.ci[0])} to ${f(m.ci[1])}` : 'n/a');
  const lines = [
    '',
    'Attribution (issue 27): each part is the difference of two configurations in the same round, medians over rounds with 95 % intervals; whole process = every thread (process.cpuUsage()), main = the main thread alone (/proc schedstat).',
    '',
    '| part | with − without | whole process µs/req | 95 % interval | share of bare | 95 % interval | main thread µs/req | main, share of bare | other threads µs/req | 95 % interval |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of attribution) {
    lines.push(
      `| ${r.part} | ${r.a} − ${r.b} | ${f1(r.us.median)} | ${range(r.us, f1)} | ${fp(r.share.median)} | ${range(r.share, fp)} | ${f1(r.mainUs.median)} | ${fp(r.mainShare.median)} | ${f1(r.otherUs.median)} | ${range(r.otherUs, f1)} |`,
    );
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Targets of issue 8, checked on the medians (a miss smaller than the A/A control's deviation is
// said to be within noise).

/** Issue 17's cells: each figure with its interval and whether its median meets the limit. */
function targets17({ summary, peers, increments }) {
  const out = [];
  const line = (what, value, ci, limit, { digits = 3, unit = '' } = {}) => {
    if (value === undefined || !Number.isFinite(value)) return;
    const interval = ci && Number.isFinite(ci[0]) ? ` [${ci[0].toFixed(digits)} to ${ci[1].toFixed(digits)}]` : '';
    out.push(`- ${what}: ${value.toFixed(digits)}${unit}${interval}: ${limit(value) ? 'met' : '**missed**'}`);
  };
  const control = summary.find((s) => s.config.control);
  if (control) line('A/A control, CPU/req ×bare (1.00 ± 0.02)', control.cpuRatio, control.cpuRatioCi, (v) => Math.abs(v - 1) <= 0.02);
  const ls = summary.find((s) => s.config.variant === LOOPSIGHT && !s.config.route);
  if (ls) {
    line('loopsight defaults above the ALS floor, share of bare (≤ +0.02)', ls.floorGap, ls.floorGapCi, (v) => v <= 0.02);
    line('loopsight defaults, CPU/req ×bare (for reference)', ls.cpuRatio, ls.cpuRatioCi, () => true);
    line('loopsight defaults, peak RSS above bare (≤ 10 MB)', ls.rssDelta, ls.rssDeltaCi, (v) => v <= 10, { digits: 1, unit: ' MB' });
  }
  const { prometheus, sampled } = increments ?? {};
  if (prometheus)
    line('+ Prometheus exporter above the defaults, share of bare (≤ +0.01)', prometheus.median, prometheus.ci, (v) => v <= 0.01);
  if (sampled)
    line('promises sampled (1/30 duty cycle) above the defaults, share of bare (≤ +0.02)', sampled.median, sampled.ci, (v) => v <= 0.02);
  // The context peers (they echo an id); prom-client and under-pressure do other jobs.
  for (const { peer, cpu } of peers.filter((p) => p.peer.echoesId))
    line(`loopsight defaults ÷ ${peer.label} (< 1.00)`, cpu.median, cpu.ci, (v) => v < 1);
  return out;
}

function targets({ summary, peers, noise }) {
  const byVariant = (variant, route) => summary.find((s) => s.config.variant === variant && s.config.route === route);
  const out = [];
  const check = (what, s, key, limit, { below = true, unit = '', digits = 3, noiseKey } = {}) => {
    if (!s) return;
    const value = s[key];
    if (!Number.isFinite(value)) return out.push(`- ${what}: n/a`);
    const met = below ? value <= limit : value >= limit;
    const by = Math.abs(value - limit);
    const within = noiseKey && noise && !met && by <= noise[noiseKey] ? ' (within the noise floor)' : '';
    const ci = s[`${key}Ci`];
    const interval = ci && Number.isFinite(ci[0]) ? `, 95 % interval ${ci[0].toFixed(digits)} to ${ci[1].toFixed(digits)}` : '';
    out.push(
      `- ${what}: ${value.toFixed(digits)}${unit}${interval}: ${met ? 'met' : `**missed** by ${by.toFixed(digits)}${unit}${within}`}`,
    );
  };
  const ls = byVariant(LOOPSIGHT);
  check('loopsight, promises off: CPU/req ×bare ≤ 1.03', ls, 'cpuRatio', 1.03, { noiseKey: 'cpu' });
  check('loopsight, promises off: req/s ×bare ≥ 0.97', ls, 'reqRatio', 0.97, { below: false, noiseKey: 'req' });
  check('loopsight, promises off: CPU/req above the ALS floor ≤ 0.01 of bare', ls, 'floorGap', 0.01, { noiseKey: 'cpu' });
  check('loopsight, promises off: p99 ×bare ≤ 1.05', ls, 'p99Ratio', 1.05, { noiseKey: 'p99' });
  check('loopsight, promises off: peak RSS ≤ bare + 10 MB', ls, 'rssDelta', 10, { unit: ' MB', digits: 1 });
  check('+ prometheus exporter: CPU/req ×bare ≤ 1.04', byVariant('loopsight-prometheus'), 'cpuRatio', 1.04, { noiseKey: 'cpu' });
  check('loopsight() (promises sampled 1 s/30 s): CPU/req ×bare ≤ 1.05', byVariant('loopsight-promises-sampled'), 'cpuRatio', 1.05, {
    noiseKey: 'cpu',
  });
  check('+ promises sampled, 33 ms/1 s: CPU/req ×bare ≤ 1.05', byVariant('loopsight-promises-sampled-scaled'), 'cpuRatio', 1.05, {
    noiseKey: 'cpu',
  });
  const full = byVariant('loopsight-promises-full');
  const fullAwaits = byVariant('loopsight-promises-full', '/awaits');
  if (full) out.push(`- + promises full (no target): CPU/req ×bare ${fmt.ratio(full.cpuRatio)} on /hello`);
  if (fullAwaits) out.push(`- + promises full (no target): CPU/req ×bare ${fmt.ratio(fullAwaits.cpuRatio)} on /awaits (10 awaits)`);
  check('+ promises full: RSS after the run ≤ bare + 30 MB', full, 'rssEndDelta', 30, { unit: ' MB', digits: 1 });
  for (const { peer, cpu } of peers) {
    const met = cpu.median < 1;
    out.push(
      `- loopsight, promises off, cheaper than ${peer.label}: CPU/req ×${peer.label} ${fmt.ratio(cpu.median)}` +
        `${Number.isFinite(cpu.ci[0]) ? `, 95 % interval ${fmt.ratio(cpu.ci[0])} to ${fmt.ratio(cpu.ci[1])}` : ''}: ${met ? 'met' : `**missed** by ${fmt.ratio(cpu.median - 1)}`}`,
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = {
  int: (n) => (Number.isFinite(n) ? Math.round(n).toString() : 'n/a'),
  ms: (n) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a'),
  us: (n) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a'),
  mb: (n) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a'),
  ratio: (n) => (Number.isFinite(n) ? n.toFixed(3) : 'n/a'),
  delta: (n) => (Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(1)}` : 'n/a'),
  gap: (n) => (Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(3)}` : ''),
};

function marked(text, deviation, noise, isBaseline) {
  if (isBaseline || noise === undefined) return text;
  return Math.abs(deviation) <= noise ? `${text} (within noise)` : `**${text}**`;
}

function table(framework, result) {
  const { summary, peers, noise, contaminated, retried, stoppedAfter } = result;
  const lines = [
    `### ${framework}`,
    '',
    '| configuration | req/s | req/s ×bare | p50 ms | p99 ms | p99 ×bare | CPU µs/req | CPU/req ×bare | main thread µs/req | main ×bare | above floor | peak RSS MB | RSS Δ MB | RSS Δ after MB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of summary) {
    // Baselines (bare, its A/A control, the bare server of another route) are not judged against the noise.
    const isBase = s === summary[0] || s.config.control || summary.some((o) => o.baseLabel === s.config.label && o !== s);
    lines.push(
      `| ${s.config.label} | ${fmt.int(s.reqPerSec)} | ${marked(fmt.ratio(s.reqRatio), s.reqRatio - 1, noise?.req, isBase)} | ${fmt.ms(s.p50)} | ${fmt.ms(s.p99)} | ${marked(fmt.ratio(s.p99Ratio), s.p99Ratio - 1, noise?.p99, isBase)} | ${fmt.us(s.cpuPerReq)} | ${marked(fmt.ratio(s.cpuRatio), s.cpuRatio - 1, noise?.cpu, isBase)} | ${fmt.us(s.mainCpuPerReq)} | ${fmt.ratio(s.mainCpuRatio)} | ${fmt.gap(s.floorGap)} | ${fmt.mb(s.peakRssMB)} | ${marked(fmt.delta(s.rssDelta), s.rssDelta, noise?.rss, isBase)} | ${fmt.delta(s.rssEndDelta)} |`,
    );
  }
  lines.push('');
  if (stoppedAfter)
    lines.push(`⚠ Stopped after ${stoppedAfter} of ${settings.rounds} rounds: this framework's share of the time limit was spent.`);
  const based = summary.filter((s) => s.baseLabel !== summary[0].config.label);
  if (based.length > 0) {
    lines.push(
      `Rows measured on another route are compared with that route's bare server: ${based.map((s) => `${s.config.label} with ${s.baseLabel}`).join('; ')}.`,
    );
  }
  lines.push(
    '“above floor”: CPU per request above the als-floor server in the same round, as a share of bare’s. “RSS Δ after”: RSS at the end of the last round, against the baseline’s.',
  );
  if (noise) {
    lines.push(
      `Noise floor (A/A control vs bare): req/s ±${(noise.req * 100).toFixed(1)} %, p99 ±${(noise.p99 * 100).toFixed(1)} %, ` +
        `CPU/req ±${(noise.cpu * 100).toFixed(1)} %, RSS ±${noise.rss.toFixed(1)} MB.`,
    );
  }
  const ci = (key, f) =>
    summary
      .slice(1)
      .filter((s) => s.config.label !== s.baseLabel && !summary.some((o) => o.baseLabel === s.config.label && o !== s))
      .map((s) => `${s.config.label} ${f(s[key][0])} to ${f(s[key][1])}`)
      .join('; ');
  lines.push(
    '95 % confidence intervals of the median ratios (order statistics over rounds): ' +
      `CPU/req ${ci('cpuRatioCi', fmt.ratio)}. req/s ${ci('reqRatioCi', fmt.ratio)}. p99 ${ci('p99RatioCi', fmt.ratio)}. ` +
      `RSS Δ MB ${ci('rssDeltaCi', fmt.delta)}.`,
  );
  if (retried > 0 || contaminated > 0) {
    lines.push(
      `${retried} run(s) were measured again because other processes were busy; ${contaminated} kept anyway after ${MAX_ATTEMPTS} tries (⚠ in the list of runs).`,
    );
  }
  const problems = summary.filter((s) => s.problems > 0);
  if (problems.length > 0) {
    lines.push(`⚠ errors, timeouts or non-2xx responses: ${problems.map((s) => `${s.config.label} ${s.problems}`).join(', ')}.`);
  }
  if (peers.length > 0) {
    lines.push('', `loopsight, promises off, against each peer (paired in the round; below 1.000: loopsight costs less):`, '');
    lines.push('| peer | CPU/req loopsight ÷ peer | 95 % interval | req/s loopsight ÷ peer |', '| --- | ---: | ---: | ---: |');
    for (const { peer, cpu, req } of peers) {
      lines.push(
        `| ${peer.label} | ${fmt.ratio(cpu.median)} | ${fmt.ratio(cpu.ci[0])} to ${fmt.ratio(cpu.ci[1])} | ${fmt.ratio(req.median)} |`,
      );
    }
  }
  lines.push(...attributionTable(result.attribution ?? []));
  const checks = targets(result);
  if (checks.length > 0) lines.push('', 'Targets of issue 8:', '', ...checks);
  const cells = targets17(result);
  if (cells.length > 0) lines.push('', 'Targets of issue 17 (CPU per request; medians over rounds, 95 % intervals):', '', ...cells);
  lines.push('');
  return lines.join('\n');
}

function rawTable(framework, runs) {
  const lines = [
    `#### ${framework}`,
    '',
    '| round | configuration | req/s | p50 ms | p99 ms | CPU µs/req | main thread µs/req | user µs | system µs | peak RSS MB | served | completed | errors | foreign load | tries |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.round} | ${r.label} | ${fmt.int(r.reqPerSec)} | ${fmt.ms(r.p50)} | ${fmt.ms(r.p99)} | ${fmt.us(r.cpuPerReq)} | ${fmt.us(r.mainCpuPerReq)} | ${r.cpuUser} | ${r.cpuSystem} | ${fmt.mb(r.peakRssMB)} | ${r.served} | ${r.completed} | ${r.errors + r.timeouts + r.non2xx} | ${r.foreign === undefined ? 'n/a' : `${(r.foreign * 100).toFixed(0)} %`}${r.contaminated ? ' ⚠' : ''} | ${r.attempts} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

function machine() {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) cpuModel = line.split(':').slice(1).join(':').trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  let nproc = String(os.availableParallelism?.() ?? os.cpus().length);
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    // keep availableParallelism
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: HERE, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', '../packages'], { cwd: HERE, encoding: 'utf8' }).trim();
    if (dirty) commit += ' (packages/ has uncommitted changes)';
  } catch {
    // not a git checkout
  }
  // The built code that was measured: packages/ may be rebuilt from uncommitted work at any time.
  let dist = 'unknown';
  try {
    const hash = createHash('sha256');
    for (const pkg of ['core', 'context', 'express', 'fastify', 'koa'])
      hash.update(readFileSync(path.join(HERE, '..', 'packages', pkg, 'dist', 'index.js')));
    dist = hash.digest('hex').slice(0, 12);
  } catch {
    // not built
  }
  const versions = {};
  for (const name of [
    'autocannon',
    'express',
    'fastify',
    'koa',
    '@koa/router',
    'cls-rtracer',
    'express-http-context',
    '@fastify/request-context',
    '@fastify/under-pressure',
    'prom-client',
    '@opentelemetry/sdk-trace-node',
    '@opentelemetry/instrumentation-http',
    '@opentelemetry/instrumentation-express',
  ]) {
    try {
      versions[name] = JSON.parse(readFileSync(path.join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      versions[name] = '?';
    }
  }
  return {
    nproc,
    cpuModel,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(0),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    commit,
    dist,
    versions,
  };
}

// ---------------------------------------------------------------------------------------------
// Main

function printRun(framework, run) {
  process.stdout.write(
    `${framework} round ${run.round}/${settings.rounds} ${run.label.padEnd(40)} ${fmt.int(run.reqPerSec).padStart(6)} req/s  ` +
      `p50 ${fmt.ms(run.p50)} ms  p99 ${fmt.ms(run.p99)} ms  ${fmt.us(run.cpuPerReq)} µs CPU/req (main ${fmt.us(run.mainCpuPerReq)})  ${fmt.mb(run.peakRssMB)} MB` +
      `${run.errors + run.timeouts + run.non2xx > 0 ? `  errors ${run.errors + run.timeouts + run.non2xx}` : ''}\n`,
  );
}

/** Whether another round fits in this framework's share of the time limit (at least 6 rounds are kept). */
function roundFits(framework, round, began, roundsBegan, budgetMs) {
  const spent = Date.now() - began;
  const perRound = round > 1 ? (Date.now() - roundsBegan) / (round - 1) : 0;
  if (round <= 6 || spent + perRound <= budgetMs) return true;
  process.stdout.write(`${framework}: its share of the time limit is spent; stopping after ${round - 1} of ${settings.rounds} rounds\n`);
  return false;
}

const byRoundThenConfig = (configs) => (a, b) =>
  a.round - b.round || configs.findIndex((c) => c.label === a.label) - configs.findIndex((c) => c.label === b.label);

/** Fisher–Yates. */
function shuffled(list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** One run of a round from its slices: CPU and requests summed, latency percentiles their medians. */
function combine(slices) {
  const sum = (key) => slices.reduce((n, r) => n + r[key], 0);
  const served = sum('served');
  return {
    ...slices.at(-1),
    reqPerSec: sum('completed') / sum('seconds'),
    p50: median(slices.map((r) => r.p50)),
    p99: median(slices.map((r) => r.p99)),
    cpuPerReq: served > 0 ? sum('cpuMicros') / served : Number.NaN,
    mainCpuPerReq: served > 0 ? sum('mainMicros') / served : Number.NaN,
    cpuUser: sum('cpuUser'),
    cpuSystem: sum('cpuSystem'),
    peakRssMB: Math.max(...slices.map((r) => r.peakRssMB)),
    served,
    completed: sum('completed'),
    errors: sum('errors'),
    timeouts: sum('timeouts'),
    non2xx: sum('non2xx'),
    foreign: Math.max(...slices.map((r) => r.foreign ?? 0)),
    attempts: Math.max(...slices.map((r) => r.attempts)),
    contaminated: slices.some((r) => r.contaminated),
  };
}

/**
 * --fresh: every round starts a new process per configuration (one after another), warms each up,
 * measures them in `slices` interleaved slices (a new order for every slice) and stops them all.
 */
async function benchFresh(framework, budgetMs) {
  const began = Date.now();
  const configs = configsOf(framework);
  const runs = [];
  let stoppedAfter;
  for (let round = 1; round <= settings.rounds; round++) {
    if (!roundFits(framework, round, began, began, budgetMs)) {
      stoppedAfter = round - 1;
      break;
    }
    const servers = new Map();
    try {
      const t = Date.now();
      for (const config of shuffled(configs)) {
        const server = await startServer(framework, config);
        servers.set(config, server);
        if (round === 1) await verify(framework, config, server);
        if (settings.warmup > 0) await load(server.url, settings.warmup);
      }
      const t1 = Date.now();
      const slices = new Map(configs.map((c) => [c, []]));
      for (let slice = 0; slice < settings.slices; slice++) {
        for (const config of shuffled(configs)) {
          slices.get(config).push(await measure(servers.get(config), `${framework} round ${round} ${config.label}`));
          await sleep(PAUSE_MS / 2);
        }
      }
      if (process.env.BENCH_TIMING) console.log(`start+warm ${t1 - t} ms, slices ${Date.now() - t1} ms`);
      for (const config of configs) {
        const run = { round, label: config.label, ...combine(slices.get(config)) };
        runs.push(run);
        printRun(framework, run);
      }
    } finally {
      await Promise.all([...servers.values()].map((s) => s.stop()));
    }
    await sleep(PAUSE_MS);
  }
  runs.sort(byRoundThenConfig(configs));
  return { framework, runs, stoppedAfter, ...summarize(configs, runs) };
}

async function benchFramework(framework, budgetMs) {
  if (settings.fresh) return benchFresh(framework, budgetMs);
  const began = Date.now();
  const configs = configsOf(framework);
  const servers = [];
  try {
    // Started side by side (each pushed as soon as it listens, so that a failure stops the others too).
    const started = await Promise.allSettled(
      configs.map((config) =>
        startServer(framework, config).then((server) => {
          servers.push(server);
          return server;
        }),
      ),
    );
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const byConfig = started.map((s) => s.value);
    servers.length = 0;
    servers.push(...byConfig);
    for (const [i, server] of servers.entries()) await verify(framework, configs[i], server);
    if (settings.warmup > 0) {
      for (const [i, server] of servers.entries()) {
        process.stdout.write(`${framework}: warm-up ${configs[i].label} (${settings.warmup} s)\n`);
        await load(server.url, settings.warmup);
        await sleep(PAUSE_MS);
      }
    }
    const runs = [];
    let roundsBegan = Date.now();
    let stoppedAfter;
    for (let round = 1; round <= settings.rounds; round++) {
      if (!roundFits(framework, round, began, roundsBegan, budgetMs)) {
        stoppedAfter = round - 1;
        break;
      }
      if (round === 1) roundsBegan = Date.now();
      const order = configs.map((config, i) => ({ config, server: servers[i] }));
      if (round % 2 === 0) order.reverse();
      for (const { config, server } of order) {
        const run = { round, label: config.label, ...(await measure(server, `${framework} round ${round} ${config.label}`)) };
        runs.push(run);
        printRun(framework, run);
        await sleep(PAUSE_MS);
      }
    }
    runs.sort(byRoundThenConfig(configs));
    return { framework, runs, stoppedAfter, ...summarize(configs, runs) };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const started = new Date();
const info = machine();
const loadBefore = os.loadavg();
const loadMode = settings.rate ? `fixed rate of ${settings.rate} req/s (autocannon overallRate)` : 'saturating (closed loop)';
console.log(
  `loopsight benchmarks: ${selected.join(', ')}; ${settings.rounds} rounds × ${settings.duration} s, ${settings.connections} connections, ` +
    `${loadMode}, warm-up ${settings.warmup} s, server flags ${NODE_OPTIONS.join(' ') || 'none'}; expected ≈ ${Math.ceil(expectedSeconds / 60)} min, time limit ${timeLimit} s`,
);
console.log(
  `${info.nproc} CPUs (${info.cpuModel}), servers on Node ${settings.nodeVersion}, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}\n`,
);

const results = [];
const totalSeconds = selected.reduce((sum, f) => sum + secondsOf(f), 0);
for (const framework of selected) results.push(await benchFramework(framework, (timeLimit * 1000 * secondsOf(framework)) / totalSeconds));
const loadAfter = os.loadavg();
const elapsed = (Date.now() - started.getTime()) / 1000;

const pad = (n) => String(n).padStart(2, '0');
const stamp = `${started.getFullYear()}-${pad(started.getMonth() + 1)}-${pad(started.getDate())}-${pad(started.getHours())}${pad(started.getMinutes())}`;
const tables = results.map((r) => table(r.framework, r)).join('\n');
const report = [
  `# loopsight benchmarks, ${stamp}${settings.quick ? ' (quick smoke run: not for comparison)' : ''}`,
  '',
  `- Machine: ${info.nproc} CPUs (\`nproc\`), ${info.cpuModel}, ${info.memGiB} GiB, ${info.platform}`,
  `- Node ${settings.nodeVersion} (servers; ${settings.node}), harness on ${info.node}; ${Object.entries(info.versions)
    .map(([name, version]) => `${name} ${version}`)
    .join(', ')}`,
  `- loopsight: built dist of commit ${info.commit}; sha256 of packages/{core,context,express,fastify,koa}/dist/index.js: ${info.dist}`,
  `- Settings: ${settings.rounds} rounds × ${settings.slices > 1 ? `${settings.slices} interleaved slices of ` : ''}${settings.duration} s per configuration (each after ${settings.fresh ? `${PRELOAD_REQUESTS} requests` : `${settings.preload} s`} of unmeasured load), ${settings.connections} connections, pipelining 1, ${loadMode}; ${settings.fresh ? '' : `warm-up ${settings.warmup} s per server; `}${settings.fresh ? `a new process per configuration per round, warmed up ${settings.warmup} s, order shuffled every round` : 'order alternated every round; servers stay up for all rounds of their framework'}; server flags: ${NODE_OPTIONS.join(' ') || 'none'}`,
  `- Other processes: a run during which they used more than ${settings.maxForeign} of a core (from /proc/stat) is measured again, up to ${MAX_ATTEMPTS} tries${settings.priority ? `; servers and load generator at nice ${settings.priority}` : ''}`,
  `- Load average (1, 5, 15 min) before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}; took ${Math.round(elapsed)} s`,
  '',
  'Medians over rounds. ×bare is the median over rounds of each run’s ratio to the `bare` run of the same round; RSS Δ likewise, in MB of peak RSS. ' +
    'A difference no larger than the A/A control’s (the same `bare` server measured again) is marked “within noise”; one beyond it is in bold. ' +
    'The A/A deviation is itself one noisy sample: the confidence intervals under each table say how precisely each median is known.',
  '',
  tables,
  '<details><summary>Every run</summary>',
  '',
  results.map((r) => rawTable(r.framework, r.runs)).join('\n'),
  '</details>',
  '',
].join('\n');

console.log(`\n${tables}`);
if (!args['no-write']) {
  const dir = path.join(HERE, 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${stamp}${args.node ? `-node${settings.nodeVersion.slice(1).split('.')[0]}` : ''}.md`);
  writeFileSync(file, report);
  console.log(`written to ${path.relative(process.cwd(), file)}`);
}
if (args.json) {
  writeFileSync(args.json, JSON.stringify({ settings, machine: info, loadBefore, loadAfter, results }, null, 2));
  console.log(`JSON written to ${args.json}`);
}
killAll();
process.exit(0);
