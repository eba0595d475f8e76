// node soak.mjs [--framework express|fastify|koa|hono] [--duration 600] [--sample 10] [--short] [--no-write]
// Mixed load on a real app with loopsight, its Prometheus and OTel exporters on, for minutes; fails
// when a request fails that would not fail without loopsight, when an injected stall goes
// unreported, or when heap, RSS, open handles or threads grow steadily. See docs/reliability.md.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { connect } from 'node:net';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';

const FRAMEWORKS = ['express', 'fastify', 'koa', 'hono'];
const HOST = '127.0.0.1';
const STALL_MS = 250;
const LEAK_AFTER_MS = 1000;
// The server's /slow route answers after 1 s; aborted requests give up well before.
const ABORT_AFTER_MS = [50, 400];
const REQUEST_TIMEOUT_MS = 30_000;
const PROBE_TIMEOUT_MS = 10_000;
const MIN_SLOPE_DURATION_MS = 300_000;
// Bounds on the least-squares slope over the second half of the samples, per minute, from the
// 10-minute runs in docs/reliability.md. Heap: 10× the largest slope measured (0.05 MB/min), and
// below the 0.9 MB/min of a leak of 100 bytes per request at 150 requests/s. RSS: the allocator
// moves it by ±5 MB from one sample to the next, ≈ 0.4 MB/min of noise in the slope. Handles:
// the interval's median still swings with the load (±13), ≈ 1/min of noise; a leak of one handle per
// thousand requests gives 9/min, and the back-to-level check after the load is exact anyway.
const BOUNDS = Object.freeze({
  heapUsed: { perMinute: 512 * 1024, unit: 'MB', scale: 1024 * 1024 },
  rss: { perMinute: 2 * 1024 * 1024, unit: 'MB', scale: 1024 * 1024 },
  handles: { perMinute: 5, unit: '', scale: 1 },
  threads: { perMinute: 0.1, unit: '', scale: 1 },
});
const VALID_ID = /^[A-Za-z0-9._:-]{1,128}$/;

// Weights of the request kinds the load mixes; stalls and scrapes run on their own clocks.
const MIX = Object.freeze({ hello: 30, awaits: 20, outbound: 20, floating: 8, leaked: 4, hostile: 10, aborted: 4 });
const ROUTE = Object.freeze({
  hello: '/hello',
  awaits: '/awaits',
  outbound: '/outbound',
  floating: '/floating',
  leaked: '/leaked',
  hostile: '/hello',
  aborted: '/slow',
});

// Incoming ids loopsight must refuse and replace. `'a\nb'` cannot be sent at all (Node's parser
// answers 400 before any middleware runs, with or without loopsight).
const HOSTILE = [
  { name: '10 KB', value: 'a'.repeat(10 * 1024) },
  { name: '<script>', value: '<script>alert(1)</script>' },
  { name: 'empty', value: '' },
  { name: 'spaces', value: 'a b c' },
  { name: 'latin1 bytes (raw socket)', raw: 'x-request-id: caf\xe9-\xff\r\n' },
  { name: 'two ids (raw socket)', raw: 'x-request-id: one\r\nx-request-id: two\r\n' },
];

const USAGE = `usage: node soak.mjs [options]
  --framework <name>  express, fastify, koa or hono (default: all four, one after the other)
  --duration <s>      seconds of load per framework (default 600; --short: 24); slopes are checked from 300
  --sample <s>        seconds between samples (default 10; --short: 2)
  --rate <n>          requests started per second, at most (default 150)
  --concurrency <n>   requests in flight, at most (default 32)
  --short             the CI version: every kind of traffic, every check but the slope; handles and
                      threads must come back to their level before the load
  --no-write          print the tables only, do not write results/soak-<date>.md`;

function options() {
  const { values } = parseArgs({
    options: {
      framework: { type: 'string' },
      duration: { type: 'string' },
      sample: { type: 'string' },
      rate: { type: 'string', default: '150' },
      concurrency: { type: 'string', default: '32' },
      short: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name, fallback) => {
    const value = Number(values[name] ?? fallback);
    if (!(value > 0)) {
      console.error(`--${name} must be a positive number (got ${values[name]})\n${USAGE}`);
      process.exit(2);
    }
    return value;
  };
  if (values.framework !== undefined && !FRAMEWORKS.includes(values.framework)) {
    console.error(`--framework must be one of ${FRAMEWORKS.join(', ')} (got ${values.framework})`);
    process.exit(2);
  }
  return {
    frameworks: values.framework ? [values.framework] : FRAMEWORKS,
    durationMs: number('duration', values.short ? 24 : 600) * 1000,
    sampleMs: number('sample', values.short ? 2 : 10) * 1000,
    rate: number('rate'),
    concurrency: number('concurrency'),
    short: values.short,
    write: !values['no-write'],
  };
}

// --- the upstream the /outbound route calls -------------------------------------------------------

async function startUpstream() {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ saw: req.headers['x-request-id'] ?? null }));
  });
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  return { url: `http://${HOST}:${server.address().port}/`, close: () => closeServer(server) };
}

function closeServer(server) {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

// --- the server under soak ---------------------------------------------------------------------

function startServer(framework, upstream, sampleMs, progress) {
  const child = fork(
    fileURLToPath(new URL('./soak/server.mjs', import.meta.url)),
    [framework, upstream, String(sampleMs), String(LEAK_AFTER_MS)],
    {
      execArgv: ['--expose-gc', '--import', fileURLToPath(new URL('./soak/otel-setup.mjs', import.meta.url))],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const samples = [];
  const waiters = [];
  let exited;
  child.on('message', (message) => {
    if (message?.type !== 'sample') return;
    samples.push(message.sample);
    if (progress && !message.sample.probe) progress(message.sample);
    for (const waiter of waiters.splice(0)) waiter(message.sample);
  });
  const ready = new Promise((resolve, reject) => {
    child.once('message', (message) => (message?.type === 'ready' ? resolve(message.port) : reject(new Error('no ready message'))));
    child.once('exit', (code, signal) => reject(new Error(`${framework} server exited before it was ready (${signal ?? code})`)));
  });
  child.on('exit', (code, signal) => {
    exited = signal ?? code;
  });
  return {
    ready,
    samples,
    exitedWith: () => exited,
    /** One sample now; rejects when the server is gone or does not answer, rather than waiting forever. */
    probe() {
      if (exited !== undefined) return Promise.reject(new Error(`the ${framework} server exited (${exited})`));
      const next = new Promise((resolve) => waiters.push(resolve));
      child.send({ type: 'probe' });
      return Promise.race([
        next,
        sleep(PROBE_TIMEOUT_MS).then(() => Promise.reject(new Error(`the ${framework} server did not answer a probe`))),
      ]);
    },
    stop() {
      if (exited !== undefined) return Promise.resolve();
      const done = new Promise((resolve) => child.once('exit', resolve));
      child.send({ type: 'stop' });
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      return done;
    },
  };
}

// --- load ----------------------------------------------------------------------------------------

function pickKind(n) {
  const kinds = Object.keys(MIX);
  // The first requests go through every kind once, so even a short run exercises each.
  if (n < kinds.length) return kinds[n];
  let roll = Math.random() * Object.values(MIX).reduce((a, b) => a + b, 0);
  for (const kind of kinds) {
    roll -= MIX[kind];
    if (roll < 0) return kind;
  }
  return 'hello';
}

/** A request over a raw socket, for header bytes undici refuses to send. Bounded by a timeout. */
function rawRequest(port, path, headerLines) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, HOST);
    const chunks = [];
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [statusLine = '', ...lines] = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
      const headers = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers });
    });
    socket.write(Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${headerLines}Connection: close\r\n\r\n`, 'latin1'));
  });
}

function runLoad({ port, durationMs, rate, concurrency, short }) {
  const origin = `http://${HOST}:${port}`;
  const dispatcher = new Agent({ connections: concurrency, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
  const stats = {};
  const failures = [];
  const stalls = [];
  let inflight = 0;
  let n = 0;
  let hostileN = 0;
  const count = (kind, field) => {
    stats[kind] ??= { sent: 0, ok: 0, aborted: 0, failed: 0 };
    stats[kind][field]++;
  };
  const fail = (kind, reason) => {
    count(kind, 'failed');
    failures.push({ kind, reason });
  };

  async function get(path, id, signal) {
    const headers = id === undefined ? {} : { 'x-request-id': id };
    const response = await request(`${origin}${path}`, { dispatcher, headers, signal });
    const text = await response.body.text();
    return { status: response.statusCode, headers: response.headers, text };
  }

  async function one(kind, seq) {
    count(kind, 'sent');
    const id = `soak-${seq}`;
    try {
      if (kind === 'hostile') return await hostile(seq);
      if (kind === 'aborted') {
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), ABORT_AFTER_MS[0] + Math.random() * (ABORT_AFTER_MS[1] - ABORT_AFTER_MS[0]));
        try {
          await get(ROUTE.aborted, id, controller.signal);
          count(kind, 'ok');
        } catch (error) {
          if (controller.signal.aborted) count(kind, 'aborted');
          else fail(kind, `${error.code ?? error.name}: ${error.message}`);
        } finally {
          clearTimeout(timer);
        }
        return;
      }
      const response = await get(ROUTE[kind], id);
      if (response.status !== 200) return fail(kind, `status ${response.status}: ${response.text.slice(0, 200)}`);
      if (response.headers['x-request-id'] !== id) return fail(kind, `id not echoed: sent ${id}, got ${response.headers['x-request-id']}`);
      if (kind === 'outbound') {
        const body = JSON.parse(response.text);
        if (body.upstreamSaw !== id) return fail(kind, `outbound call carried ${body.upstreamSaw}, not ${id}`);
      }
      count(kind, 'ok');
    } catch (error) {
      fail(kind, `${error.code ?? error.name}: ${error.message}`);
    }
  }

  async function hostile() {
    const value = HOSTILE[hostileN++ % HOSTILE.length];
    const response = value.raw === undefined ? await get(ROUTE.hostile, value.value) : await rawRequest(port, ROUTE.hostile, value.raw);
    const echoed = response.headers['x-request-id'];
    if (response.status !== 200) return fail('hostile', `${value.name}: status ${response.status}`);
    if (typeof echoed !== 'string' || !VALID_ID.test(echoed))
      return fail('hostile', `${value.name}: answered with id ${JSON.stringify(echoed)?.slice(0, 80)}`);
    if (value.value !== undefined && echoed === value.value) return fail('hostile', `${value.name}: reflected`);
    count('hostile', 'ok');
  }

  async function stall(seq) {
    const id = `stall-${seq}`;
    const sentAt = Date.now();
    count('stall', 'sent');
    try {
      const response = await get(`/stall/${STALL_MS}`, id);
      if (response.status !== 200) return fail('stall', `status ${response.status}`);
      stalls.push({ id, sentAt, doneAt: Date.now() });
      count('stall', 'ok');
    } catch (error) {
      fail('stall', `${error.code ?? error.name}: ${error.message}`);
    }
  }

  async function scrape() {
    count('metrics', 'sent');
    try {
      const response = await get('/metrics');
      if (response.status !== 200 || !response.text.includes('loopsight_event_loop_delay_seconds')) {
        return fail('metrics', `status ${response.status}, ${response.text.length} bytes without loopsight metrics`);
      }
      count('metrics', 'ok');
    } catch (error) {
      fail('metrics', `${error.code ?? error.name}: ${error.message}`);
    }
  }

  const started = Date.now();
  const end = started + durationMs;
  // Stalls stop early enough that the last one is reported before the final samples.
  const stallEvery = short ? 5000 : 7000;
  const scrapeEvery = short ? 2000 : 5000;
  const pending = new Set();
  const launch = (promise) => {
    inflight++;
    const tracked = promise.finally(() => {
      inflight--;
      pending.delete(tracked);
    });
    pending.add(tracked);
  };

  return (async () => {
    let nextStall = started + 1000;
    let nextScrape = started + 500;
    let stallSeq = 0;
    const gap = 1000 / rate;
    while (Date.now() < end) {
      const now = Date.now();
      if (now >= nextStall && now < end - 2000) {
        nextStall += stallEvery;
        launch(stall(stallSeq++));
      }
      if (now >= nextScrape) {
        nextScrape += scrapeEvery;
        launch(scrape());
      }
      if (inflight < concurrency) launch(one(pickKind(n), n++));
      await sleep(gap);
    }
    await Promise.all(pending);
    await dispatcher.close();
    return { stats, failures, stalls, elapsedMs: Date.now() - started };
  })();
}

/**
 * The bounds hold once the process has warmed up: heap and RSS still climb for the first 3 minutes
 * or so (JIT, caches, the span tracker filling), so a second half that starts earlier measures the
 * warm-up (a 3-minute Koa run: RSS 3 MB/min; the same Koa over 10 minutes: −1.3 MB/min).
 */
function slopeChecked(opts) {
  return !opts.short && opts.durationMs >= MIN_SLOPE_DURATION_MS;
}

// --- checks --------------------------------------------------------------------------------------

/** Least-squares slope of y over t, per minute. */
function slopePerMinute(points) {
  if (points.length < 3) return Number.NaN;
  const t = points.map((p) => p.t / 60_000);
  const y = points.map((p) => p.y);
  const mt = t.reduce((a, b) => a + b, 0) / t.length;
  const my = y.reduce((a, b) => a + b, 0) / y.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < t.length; i++) {
    num += (t[i] - mt) * (y[i] - my);
    den += (t[i] - mt) ** 2;
  }
  return num / den;
}

function checkStalls(injected, samples) {
  const reports = samples.flatMap((s) => s.stalls);
  const named = new Map();
  for (const report of reports) {
    for (const id of [report.id, ...report.candidates]) if (id) named.set(id, report);
  }
  const missed = [];
  let merged = 0;
  for (const stall of injected) {
    if (named.has(stall.id)) continue;
    // Two stalls back to back can make one report; it names the first request only.
    const overlapping = reports.find(
      (r) => r.at <= stall.doneAt && r.at + r.durationMs + STALL_MS >= stall.sentAt && r.id?.startsWith('stall-'),
    );
    if (overlapping) merged++;
    else missed.push(stall.id);
  }
  const attributed = injected.filter((s) => named.get(s.id)?.id === s.id).length;
  const ours = new Set(injected.map((s) => s.id));
  const other = reports.filter((r) => !ours.has(r.id) && !r.candidates.some((c) => ours.has(c)));
  return {
    reports: reports.length,
    attributed,
    merged,
    missed,
    other: other.length,
    // What the stalls nobody injected were: the machine is shared, so a few are expected.
    others: other
      .slice(0, 5)
      .map((r) => `${r.durationMs} ms in ${topFrame(r)} (${r.stackSource}, ${r.id ? 'a request' : `${r.candidates.length} candidates`})`),
    tops: countBy(reports.map((r) => `${topFrame(r)} (${r.stackSource})`)),
  };
}

function topFrame(report) {
  if (report.stackSource === 'none') return '(no stack)';
  return report.top || '(anonymous)';
}

function countBy(names) {
  const counts = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

async function soakOne(framework, upstream, opts) {
  const started = Date.now();
  // A line per sample on a long run, so a run that goes wrong is seen before its end.
  const progress = opts.short
    ? undefined
    : (s) =>
        console.log(
          `${framework} ${((s.t - started) / 1000).toFixed(0)} s: heap ${(s.heapUsed / 1048576).toFixed(1)} MB, ` +
            `RSS ${(s.rss / 1048576).toFixed(1)} MB, handles ${s.handles}, threads ${s.threads}, ${s.requests} requests served`,
        );
  const server = startServer(framework, upstream.url, opts.sampleMs, progress);
  try {
    return await soakServer(framework, server, opts);
  } catch (error) {
    return { framework, broken: error.message, problems: [error.message] };
  } finally {
    await server.stop();
  }
}

async function soakServer(framework, server, opts) {
  const port = await server.ready;
  const problems = [];

  // Warm-up: every route once, so lazily started parts (the watchdog thread, pools) count in the baseline.
  const warm = runLoad({ port, durationMs: 300, rate: 50, concurrency: 4, short: true });
  await warm;
  await sleep(LEAK_AFTER_MS + 2500);
  const baseline = await server.probe();
  const loadStart = Date.now();
  const load = await runLoad({ port, ...opts, durationMs: opts.durationMs });
  const loadEnd = Date.now();

  // After the load: leaked promises get decided, keep-alive sockets close; handles and threads should
  // come back to where they were before the load.
  let settled;
  const settleBy = Date.now() + 15_000;
  await sleep(LEAK_AFTER_MS + 1500);
  for (;;) {
    settled = await server.probe();
    if ((settled.handles <= baseline.handles && settled.threads <= baseline.threads) || Date.now() > settleBy) break;
    await sleep(500);
  }
  const exited = server.exitedWith();
  if (exited !== undefined) problems.push(`the server exited during the run (${exited})`);

  const during = server.samples.filter((s) => !s.probe && s.t >= loadStart && s.t <= loadEnd + opts.sampleMs / 2);
  const all = server.samples;
  const secondHalf = during.slice(Math.floor(during.length / 2));
  const series = {};
  for (const name of Object.keys(BOUNDS)) {
    const values = during.map((s) => s[name]);
    const slope = slopePerMinute(secondHalf.map((s) => ({ t: s.t, y: s[name] })));
    series[name] = { first: values[0], last: values.at(-1), max: Math.max(...values), slope, checked: slopeChecked(opts) };
    if (slopeChecked(opts) && !(slope <= BOUNDS[name].perMinute)) {
      problems.push(`${name} grows: ${fmt(name, slope)}/min over the second half, bound ${fmt(name, BOUNDS[name].perMinute)}/min`);
    }
  }
  if (slopeChecked(opts) && secondHalf.length < 5)
    problems.push(`only ${secondHalf.length} samples in the second half: run longer or sample more often`);
  if (settled.handles > baseline.handles) {
    problems.push(
      `open handles did not come back: ${baseline.handles} before the load, ${settled.handles} after (${JSON.stringify(settled.resources)})`,
    );
  }
  if (settled.threads > baseline.threads)
    problems.push(`threads did not come back: ${baseline.threads} before the load, ${settled.threads} after`);

  const failed = Object.values(load.stats).reduce((a, s) => a + s.failed, 0);
  if (failed > 0) {
    const reasons = countBy(load.failures.map((f) => `${f.kind}: ${f.reason}`));
    const top = Object.entries(reasons)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([reason, c]) => `${c}× ${reason}`);
    problems.push(`${failed} requests failed that should not have: ${top.join('; ')}`);
  }
  for (const kind of [...Object.keys(MIX), 'stall', 'metrics']) {
    if (!load.stats[kind]?.sent) problems.push(`no ${kind} request was sent`);
  }
  const stalls = checkStalls(load.stalls, all);
  if (stalls.missed.length > 0)
    problems.push(`${stalls.missed.length} of ${load.stalls.length} injected stalls unreported: ${stalls.missed.slice(0, 5).join(', ')}`);
  const last = settled;
  if (last.counters.internalErrors > 0) problems.push(`loopsight counted ${last.counters.internalErrors} internal errors`);

  const warnings = all.flatMap((s) => s.warnings);
  return { framework, baseline, settled: last, series, during, load, stalls, warnings, loadStart, problems };
}

// --- output --------------------------------------------------------------------------------------

function fmt(name, value) {
  const { scale, unit } = BOUNDS[name];
  if (!Number.isFinite(value)) return 'n/a';
  const scaled = value / scale;
  const digits = unit ? 2 : Math.abs(scaled) < 10 ? 2 : 0;
  return `${scaled.toFixed(digits)}${unit ? ` ${unit}` : ''}`;
}

function table(result, opts) {
  const { series, load, stalls, settled, baseline } = result;
  const lines = [];
  lines.push(`### ${result.framework}`, '');
  if (result.broken !== undefined) return [...lines, `- **FAIL**: ${result.broken}`, ''].join('\n');
  lines.push(
    `${(load.elapsedMs / 1000).toFixed(0)} s of load, ${result.during.length} samples every ${opts.sampleMs / 1000} s; ` +
      `${result.problems.length === 0 ? 'PASS' : 'FAIL'}`,
    '',
  );
  lines.push('| sample | first | last | max | slope/min, 2nd half | bound/min | before load → after |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const [name, s] of Object.entries(series)) {
    const check = s.checked
      ? s.slope <= BOUNDS[name].perMinute
        ? 'ok'
        : 'FAIL'
      : `not checked (${opts.short ? '--short' : 'under 5 min'})`;
    lines.push(
      `| ${name} | ${fmt(name, s.first)} | ${fmt(name, s.last)} | ${fmt(name, s.max)} | ${fmt(name, s.slope)} | ${fmt(name, BOUNDS[name].perMinute)} (${check}) | ${fmt(name, baseline[name])} → ${fmt(name, settled[name])} |`,
    );
  }
  lines.push('');
  lines.push('| requests | sent | ok | aborted | failed |');
  lines.push('|---|---:|---:|---:|---:|');
  for (const [kind, s] of Object.entries(load.stats)) lines.push(`| ${kind} | ${s.sent} | ${s.ok} | ${s.aborted} | ${s.failed} |`);
  lines.push('');
  const p = settled.counters.promises;
  const byKind = (field) => ['floating', 'leaked', 'unhandled'].map((k) => `${k} ${p?.[field]?.[k] ?? '–'}`).join(', ');
  lines.push(
    `- stalls: ${load.stalls.length} injected (${STALL_MS} ms), ${load.stalls.length - stalls.missed.length} reported ` +
      `(${stalls.attributed} with the request established, ${stalls.merged} merged with a neighbour), ${stalls.missed.length} missed; ` +
      `${stalls.reports} stall reports in all, ${stalls.other} not from an injected stall${stalls.other ? ` (${stalls.others.join('; ')})` : ''}; ` +
      `top frames: ${JSON.stringify(stalls.tops)}`,
  );
  lines.push(
    `- promise reports received: ${JSON.stringify(settled.promiseReports)}; tracker counters: reported ${byKind('reported')}; suppressed ${byKind('suppressed')}; tracked now ${p?.tracked ?? '–'}, dropped ${p?.dropped ?? '–'}`,
  );
  lines.push(
    `- ids refused: ${JSON.stringify(settled.counters.correlationIdsRejected)}; internal errors ${settled.counters.internalErrors}; ` +
      `in-flight dropped ${settled.counters.inflightDropped}; OTel: ${settled.spansExported} spans, ${settled.metricExports} metric exports`,
  );
  for (const warning of result.warnings) {
    lines.push(`- loopsight warned ${((warning.t - result.loadStart) / 1000).toFixed(0)} s into the load: ${warning.message}`);
  }
  lines.push(`- open handles after the load: ${JSON.stringify(settled.resources)}`);
  const mb = (bytes) => (bytes / 1024 / 1024).toFixed(1);
  lines.push(`- heap used by sample, MB: ${result.during.map((s) => mb(s.heapUsed)).join(' ')}`);
  lines.push(`- RSS by sample, MB: ${result.during.map((s) => mb(s.rss)).join(' ')}`);
  lines.push(`- open handles by sample (median of the interval): ${result.during.map((s) => s.handles).join(' ')}`);
  for (const problem of result.problems) lines.push(`- **FAIL**: ${problem}`);
  lines.push('');
  return lines.join('\n');
}

// --- main ----------------------------------------------------------------------------------------

const opts = options();
const upstream = await startUpstream();
const results = [];
const header = [
  `# Soak, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
  '',
  `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.platform()} ${os.release()}. ` +
    `${opts.durationMs / 1000} s of load per framework${opts.short ? ' (--short)' : ''}, a sample every ${opts.sampleMs / 1000} s, ` +
    `at most ${opts.rate} requests/s and ${opts.concurrency} in flight; a ${STALL_MS} ms stall every ${opts.short ? 5 : 7} s; ` +
    `promises: full, leakAfterMs ${LEAK_AFTER_MS}.`,
  '',
].join('\n');
console.log(header);
try {
  for (const framework of opts.frameworks) {
    const result = await soakOne(framework, upstream, opts);
    results.push(result);
    console.log(table(result, opts));
  }
} finally {
  await upstream.close();
}

const failed = results.filter((r) => r.problems.length > 0);
const verdict = failed.length === 0 ? 'PASS' : `FAIL (${failed.map((r) => r.framework).join(', ')})`;
if (opts.write) {
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().slice(0, 16).replace('T', '-').replace(':', '');
  const file = `${dir}soak-${stamp}.md`;
  writeFileSync(file, `${header}\n${results.map((r) => table(r, opts)).join('\n')}\n${verdict}\n`);
  console.log(`written to ${file}`);
}
console.log(`soak: ${verdict}`);
process.exitCode = failed.length === 0 ? 0 : 1;
