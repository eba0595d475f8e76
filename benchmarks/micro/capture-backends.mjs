// What each stall capture backend costs, the native addon against the inspector. Run with the
// packages built, once per Node version:
//   node micro/capture-backends.mjs
//
// Each figure comes from a child process of its own (the addon keeps a thread's registration, and
// an inspector session once opened changes the isolate), the backends alternated, RUNS each:
// - held per capture: a fixed amount of JavaScript work (about 1 s) that notes every gap of more
//   than 0.2 ms between checks a few µs apart (time it did not run), with the watchdog capturing
//   its stall, minus the same with captures off, divided by the captures taken (the native
//   backend samples every 25 ms: many per stall; the inspector pauses once);
// - RSS: the process's resident memory 1 s after start, watchdog started, no stall;
// - CPU per request: process CPU time over 3,000 sequential HTTP requests to a node:http server
//   with a default monitor, each request in its scope (the client in the same process, alike for every row), per request.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const RUNS = 3;
const self = fileURLToPath(import.meta.url);
const role = process.argv[2];

if (role === 'held') await held(process.argv[3]);
else if (role === 'rss') await rss(process.argv[3]);
else if (role === 'cpu') await cpu(process.argv[3]);
else parent();

function parent() {
  const child = (what, capture) => JSON.parse(execFileSync(process.execPath, [self, what, capture], { encoding: 'utf8' }));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = {
    native: { held: [], samples: [], rss: [], cpu: [] },
    inspector: { held: [], samples: [], rss: [], cpu: [] },
    off: { rss: [], cpu: [] },
  };
  for (let i = 0; i < RUNS; i++) {
    for (const capture of ['native', 'inspector']) {
      const h = child('held', capture);
      rows[capture].held.push(h.heldMs);
      rows[capture].samples.push(h.captures);
      rows[capture].rss.push(child('rss', capture).rssMb);
      rows[capture].cpu.push(child('cpu', capture).cpuUsPerRequest);
    }
    rows.off.rss.push(child('rss', 'off').rssMb);
    rows.off.cpu.push(child('cpu', 'off').cpuUsPerRequest);
  }
  console.log(`Node ${process.version}, ${RUNS} runs each, medians\n`);
  console.log('| backend | main-thread time held per capture | captures in a 1 s stall | RSS, idle | CPU per request |');
  console.log('|---|---|---|---|---|');
  for (const capture of ['native', 'inspector']) {
    const r = rows[capture];
    console.log(
      `| ${capture} | ${median(r.held).toFixed(2)} ms | ${median(r.samples)} | ${median(r.rss).toFixed(1)} MB | ${median(r.cpu).toFixed(1)} µs |`,
    );
  }
  console.log(`| no watchdog (loopLag: false) | | | ${median(rows.off.rss).toFixed(1)} MB | ${median(rows.off.cpu).toFixed(1)} µs |`);
}

async function load() {
  return import('@loopsight/core');
}

/** The work, and the time it was held off the CPU: the sum of gaps over 0.2 ms between checks a few µs apart. */
function work(iterations) {
  let x = 0;
  let held = 0;
  let last = performance.now();
  for (let i = 0; i < iterations; i++) {
    x = (x + Math.sqrt(i)) % 1e9;
    if (i % 1000 === 0) {
      const now = performance.now();
      if (now - last > 0.2) held += now - last;
      last = now;
    }
  }
  return held + x * 0;
}

async function held(capture) {
  const { createMonitor } = await load();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // About 1 s of work on this machine.
  let iterations = 1e6;
  for (let t = 0; t < 1000; ) {
    const s = performance.now();
    work(iterations);
    t = performance.now() - s;
    if (t < 1000) iterations = Math.ceil(iterations * Math.min(10, 1050 / Math.max(t, 1)));
  }
  const timed = async (captureStacks) => {
    const reports = [];
    const monitor = createMonitor({
      promises: false,
      onReport() {},
      logger: { warn() {} },
      loopLag: { capture, captureStacks, maxStacksPerMinute: 1000 },
    });
    monitor.on('stall', (r) => reports.push(r));
    monitor.start();
    await sleep(500);
    const ms = monitor.run({ correlationId: 'bench' }, () => work(iterations));
    await sleep(300);
    await monitor.stop();
    return { ms, report: reports.find((r) => r.durationMs > 500) };
  };
  // Alternated, three of each: the least of each.
  const on = [];
  const off = [];
  for (let i = 0; i < 3; i++) {
    off.push(await timed(false));
    on.push(await timed(true));
  }
  const best = (xs) => xs.reduce((a, b) => (b.ms < a.ms ? b : a));
  const withCaptures = best(on);
  const captures = withCaptures.report?.samples ?? (withCaptures.report?.stack.length ? 1 : 0);
  const heldMs = Math.max(0, withCaptures.ms - best(off).ms) / Math.max(1, captures);
  process.stdout.write(JSON.stringify({ heldMs, captures }));
}

async function rss(capture) {
  const { createMonitor } = await load();
  const monitor = createMonitor({
    promises: false,
    onReport() {},
    logger: { warn() {} },
    loopLag: capture === 'off' ? false : { capture },
  });
  monitor.start();
  await new Promise((r) => setTimeout(r, 1000));
  // The inspector backend opens its session at a stall: one stall first, for both.
  if (capture !== 'off') {
    monitor.run({ correlationId: 'warm' }, () => work(2e6));
    await new Promise((r) => setTimeout(r, 500));
  }
  process.stdout.write(JSON.stringify({ rssMb: process.memoryUsage().rss / 2 ** 20 }));
  await monitor.stop();
}

async function cpu(capture) {
  const http = await import('node:http');
  const { createMonitor } = await load();
  const monitor = createMonitor({
    promises: false,
    onReport() {},
    logger: { warn() {} },
    loopLag: capture === 'off' ? false : { capture },
  });
  monitor.start();
  // Each request in a scope of the monitor, as an adapter opens it.
  let n = 0;
  const server = http.createServer((_req, res) => monitor.run({ correlationId: `r-${n++}`, route: '/' }, () => res.end('ok')));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/`;
  for (let i = 0; i < 300; i++) await (await fetch(url)).text();
  const N = 3000;
  const before = process.cpuUsage();
  for (let i = 0; i < N; i++) await (await fetch(url)).text();
  const used = process.cpuUsage(before);
  server.close();
  await monitor.stop();
  process.stdout.write(JSON.stringify({ cpuUsPerRequest: (used.user + used.system) / N }));
}
