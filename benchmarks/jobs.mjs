// Per-job cost of @loopsight/bullmq: a BullMQ worker (concurrency 10) draining a pre-filled queue
// with the same processor, bare, wrapped by hand in AsyncLocalStorage (the floor: what any
// per-job context costs) and monitored by loopsight(worker). Each configuration runs in a fresh
// process per round, the order rotated round by round; bare runs twice (the A/A control: the
// noise floor). Prints medians of jobs/s and CPU µs per job (all threads of the worker process;
// redis-server's CPU is not counted). Needs the packages built and redis-server (or REDIS_URL).
//
// --direct: the per-job path alone, without Redis round trips: the worker's callProcessJob (the
// hook loopsight wraps) called on in-memory jobs, `concurrency` at a time; --jobs 200000 suits it.
//
//   node jobs.mjs [--rounds 7] [--jobs 4000] [--concurrency 10] [--direct] [--only <configuration>]...

import { AsyncLocalStorage } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    jobs: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '10' },
    child: { type: 'string' },
    redis: { type: 'string' },
    queue: { type: 'string' },
    direct: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true },
  },
});

const VARIANTS = {
  bare: 'bare (A)',
  'bare-aa': 'bare (A/A control)',
  als: 'hand-written AsyncLocalStorage wrapper (the floor)',
  loopsight: 'loopsight(worker), defaults',
  'loopsight-lean': 'loopsight(worker), promises off',
  'loopsight-scope': 'loopsight(worker), promises and loopLag off (the scope alone)',
};
const OPTIONS = { loopsight: undefined, 'loopsight-lean': { promises: false }, 'loopsight-scope': { promises: false, loopLag: false } };

/** The processor every configuration runs: a few awaits and a little work, as a small real job does. */
async function processor(job) {
  let sum = 0;
  for (let i = 0; i < 3; i++) {
    await Promise.resolve();
    sum += job.data.n * i;
  }
  await new Promise((resolve) => setImmediate(resolve));
  return sum;
}

async function child(variant) {
  const { Queue, Worker } = await import('bullmq');
  const { Redis } = await import('ioredis');
  const { DATA_KEY } = await import('@loopsight/bullmq');
  const jobs = Number(args.jobs);
  const connections = [];
  const connect = () => {
    const c = new Redis(args.redis, { maxRetriesPerRequest: null });
    connections.push(c);
    return c;
  };
  const queue = new Queue(args.queue, { connection: connect() });
  // The same payload for every configuration: the enqueuing id rides in the data, as propagate() puts it.
  for (let i = 0; !args.direct && i < jobs; i += 500) {
    await queue.addBulk(
      Array.from({ length: Math.min(500, jobs - i) }, (_, k) => ({
        name: 'work',
        data: { n: i + k, [DATA_KEY]: `req-${i + k}` },
        opts: { removeOnComplete: true, removeOnFail: true },
      })),
    );
  }
  let run = processor;
  if (variant === 'als') {
    const als = new AsyncLocalStorage();
    run = (job) => {
      const id = job.data[DATA_KEY];
      delete job.data[DATA_KEY];
      return als.run(
        { correlationId: typeof id === 'string' ? id : randomUUID(), method: 'JOB', route: job.name, startedAt: Date.now() },
        () => processor(job),
      );
    };
  }
  const worker = new Worker(args.queue, (job) => run(job), {
    connection: connect(),
    concurrency: Number(args.concurrency),
    autorun: false,
  });
  let monitor;
  if (variant.startsWith('loopsight')) {
    const { loopsight } = await import('@loopsight/bullmq');
    monitor = loopsight(worker, OPTIONS[variant]);
  }
  if (args.direct) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const batch = Number(args.concurrency);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < jobs; i += batch) {
      const calls = [];
      for (let k = 0; k < batch; k++)
        calls.push(worker.callProcessJob({ name: 'work', data: { n: i + k, [DATA_KEY]: `req-${i + k}` } }, 'token'));
      await Promise.all(calls);
    }
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    await worker.close();
    await queue.close();
    for (const c of connections) c.disconnect();
    await monitor?.stop();
    process.stdout.write(`${JSON.stringify({ wallMs, cpuUs: cpu.user + cpu.system, jobs })}\n`);
    return;
  }
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => {
    finish = resolve;
  });
  worker.on('completed', () => {
    if (++done === jobs) finish();
  });
  // loopsight's watchdog thread and sampler start with the monitor: not part of the per-job cost.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  worker.run();
  await finished;
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  for (const c of connections) c.disconnect();
  await monitor?.stop();
  process.stdout.write(`${JSON.stringify({ wallMs, cpuUs: cpu.user + cpu.system, jobs })}\n`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const quart = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

async function main() {
  const { startRedis } = await import('../examples/start-redis.mjs');
  const redis = process.env.REDIS_URL ? undefined : await startRedis();
  const url = process.env.REDIS_URL || redis.url;
  const rounds = Number(args.rounds);
  // --only <name>: these configurations (and bare, the baseline), e.g. --only als --only loopsight-scope.
  const names = Object.keys(VARIANTS).filter((n) => !args.only || n === 'bare' || args.only.includes(n));
  const results = Object.fromEntries(names.map((n) => [n, []]));
  const self = fileURLToPath(import.meta.url);
  for (let round = 0; round < rounds; round++) {
    // Rotate the order: no configuration always runs first, or right after another.
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const variant of order) {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          self,
          '--child',
          variant,
          '--redis',
          url,
          '--queue',
          `bench-${variant}-${round}`,
          '--jobs',
          args.jobs,
          '--concurrency',
          args.concurrency,
          ...(args.direct ? ['--direct'] : []),
        ],
        { timeout: 120_000 },
      );
      const r = JSON.parse(stdout.trim().split('\n').at(-1));
      results[variant].push({ jobsPerSec: (r.jobs / r.wallMs) * 1000, cpuUsPerJob: r.cpuUs / r.jobs });
      process.stderr.write(
        `round ${round + 1}/${rounds} ${variant}: ${((r.jobs / r.wallMs) * 1000).toFixed(0)} jobs/s, ${(r.cpuUs / r.jobs).toFixed(1)} µs CPU/job\n`,
      );
    }
  }
  await redis?.close();
  const base = { rate: median(results.bare.map((r) => r.jobsPerSec)), cpu: median(results.bare.map((r) => r.cpuUsPerJob)) };
  console.log(
    `\n${process.version}, ${args.direct ? 'callProcessJob called directly (no Redis), ' : ''}${rounds} rounds, ${args.jobs} jobs per run, concurrency ${args.concurrency}, a fresh process per configuration per round, order rotated; medians\n`,
  );
  console.log('| configuration | jobs/s | vs bare | p25–p75 | CPU µs/job | vs bare | p25–p75 |');
  console.log('|---|---|---|---|---|---|---|');
  for (const name of names) {
    const rates = results[name].map((r) => r.jobsPerSec);
    const cpus = results[name].map((r) => r.cpuUsPerJob);
    const rate = median(rates);
    const cpu = median(cpus);
    const pct = (v, b) => (name === 'bare' ? '' : `${v >= b ? '+' : ''}${(((v - b) / b) * 100).toFixed(1)} %`);
    console.log(
      `| ${VARIANTS[name]} | ${rate.toFixed(0)} | ${pct(rate, base.rate)} | ${quart(rates, 0.25).toFixed(0)}–${quart(rates, 0.75).toFixed(0)} | ${cpu.toFixed(1)} | ${pct(cpu, base.cpu)} | ${quart(cpus, 0.25).toFixed(1)}–${quart(cpus, 0.75).toFixed(1)} |`,
    );
  }
}

if (args.child) await child(args.child);
else await main();
