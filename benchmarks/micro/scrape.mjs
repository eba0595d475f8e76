// CPU cost of one Prometheus scrape of loopsight's metrics, and of the OTel exporter's per-request
// hook. Run with the packages built: `node micro/scrape.mjs` from benchmarks/ (`--json` for raw numbers).
//
// CPU time from process.cpuUsage(), not wall time, so that other processes on the machine do not
// count; configurations alternate over several rounds and the median round is reported. The
// exporters are imported from the built packages by path: this file needs no dependency of its own.
import { createRequire } from 'node:module';
import { cpus } from 'node:os';

const ROUNDS = 7;
const root = new URL('../../packages/', import.meta.url);
const { createMonitor } = await import(new URL('core/dist/index.js', root).href);
const { internals } = await import(new URL('core/dist/adapter-kit.js', root).href);
const { prometheusExporter } = await import(new URL('prometheus/dist/index.js', root).href);
const { otelExporter } = await import(new URL('otel/dist/index.js', root).href);
const { Registry, collectDefaultMetrics } = createRequire(new URL('prometheus/package.json', root))('prom-client');
const otelRequire = createRequire(new URL('otel/package.json', root));
const api = otelRequire('@opentelemetry/api');
const { AsyncLocalStorageContextManager } = otelRequire('@opentelemetry/context-async-hooks');
const { BasicTracerProvider } = otelRequire('@opentelemetry/sdk-trace-base');

// loopLag off: the stall watchdog's worker thread would count in process.cpuUsage(). The delay
// histogram then reads zeros, which costs the same to expose as counts.
const quiet = { logger: { warn() {} }, onReport() {}, promises: false, loopLag: false };
const monitors = [];

function registryWith({ routes = 0, defaults = false, loopsight = true } = {}) {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  const monitor = createMonitor(quiet);
  if (loopsight) monitor.attach(prometheusExporter({ registry }));
  monitor.start();
  monitors.push(monitor);
  // Stall and promise series for `routes` route templates: 100 is the default cap, the worst case.
  for (let i = 0; i < routes; i++) {
    const request = { correlationId: `c${i}`, route: `/route/${i}/:id`, startedAt: Date.now() };
    internals(monitor).report({ type: 'stall', durationMs: 150, at: Date.now(), stack: [], stackSource: 'none', inflight: 1, request });
    for (const kind of ['floating', 'leaked', 'unhandled'])
      internals(monitor).report({ type: 'promise', kind, stack: [], request, ageMs: 1 });
  }
  return registry;
}

async function cpuMicros(fn, n) {
  const before = process.cpuUsage();
  // Awaited only when it returns a promise: an await per call would cost more than a hook.
  for (let i = 0; i < n; i++) {
    const result = fn();
    if (result instanceof Promise) await result;
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(cases, n) {
  const samples = new Map(cases.map(([name]) => [name, []]));
  for (const [, fn] of cases) await cpuMicros(fn, 200); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, fn] of cases) samples.get(name).push(await cpuMicros(fn, n));
  }
  return cases.map(([name]) => ({ name, micros: median(samples.get(name)) }));
}

const scrapeCases = [
  ['loopsight only, no stall or promise yet', registryWith()],
  ['loopsight, 100 routes with stalls and promises', registryWith({ routes: 100 })],
  ['prom-client collectDefaultMetrics() only', registryWith({ defaults: true, loopsight: false })],
  ['collectDefaultMetrics() + loopsight, 100 routes', registryWith({ defaults: true, routes: 100 })],
];
const bytes = Object.fromEntries(await Promise.all(scrapeCases.map(async ([name, r]) => [name, Buffer.byteLength(await r.metrics())])));
const scrapes = await measure(
  scrapeCases.map(([name, registry]) => [name, () => registry.metrics()]),
  500,
);

// The OTel exporter's only per-request work: tagging the request's span when the request begins.
api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const span = new BasicTracerProvider().getTracer('bench').startSpan('GET /users/:id', { kind: api.SpanKind.SERVER });
const inSpan = api.trace.setSpan(api.context.active(), span);
// Both on one monitor: the exporter hears every monitor's request starts (diagnostics_channel),
// so it is stopped while the bare configuration is measured.
const monitor = createMonitor(quiet);
const exporter = otelExporter();
monitor.start();
monitors.push(monitor);
const noop = () => 0;
let id = 0;
const run = () => api.context.with(inSpan, () => monitor.run({ correlationId: `r${id++}` }, noop));
const configurations = [
  ['monitor.run() inside a server span, no exporter', () => exporter.stop()],
  ['monitor.run() inside a server span, otelExporter()', () => exporter.start(monitor)],
];
const perRequest = new Map(configurations.map(([name]) => [name, []]));
for (let round = -1; round < ROUNDS; round++) {
  for (const [name, enter] of configurations) {
    enter();
    const micros = await cpuMicros(run, 20_000);
    if (round >= 0) perRequest.get(name).push(micros); // round -1 warms up
  }
}
exporter.stop();
const hooks = configurations.map(([name]) => ({ name, micros: median(perRequest.get(name)) }));
span.end();
for (const monitor of monitors) await monitor.stop();

const env = `node ${process.version}, ${cpus()[0]?.model} x${cpus().length}, median of ${ROUNDS} alternating rounds`;
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ env, scrapes: scrapes.map((s) => ({ ...s, bytes: bytes[s.name] })), hooks }, null, 2));
} else {
  console.log(env);
  console.log('\n| scrape of one registry | CPU µs per scrape | body bytes |\n|---|---:|---:|');
  for (const s of scrapes) console.log(`| ${s.name} | ${s.micros.toFixed(0)} | ${bytes[s.name]} |`);
  console.log('\n| per request | CPU ns per request |\n|---|---:|');
  for (const h of hooks) console.log(`| ${h.name} | ${(h.micros * 1000).toFixed(0)} |`);
}
