// Cost per operation of loopsight's request context, with tinybench, next to what a bare
// AsyncLocalStorage costs for the same thing. Run with the packages built:
//   node micro/context.mjs            (or `npx pnpm@10.34.9 --filter @loopsight/benchmarks micro` for every micro benchmark)
//   node micro/context.mjs --json
//
// Each task runs its operation BATCH times, so that a sample (one task call) is far longer than
// the timer's resolution; figures are ns per operation, the median over samples.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { enablePropagation, getCorrelationId, withCorrelationId } from '@loopsight/context';
import { createMonitor, currentScope } from '@loopsight/core';
import { createHttpHandler, internals, runInScope } from '@loopsight/core/adapter';
import { Bench } from 'tinybench';

const BATCH = 1000;
const json = process.argv.includes('--json');

// Promise tracking and the stall watchdog are off: they cost nothing per scope (their cost is in
// micro/promises.mjs and the HTTP benchmark); this measures the context alone.
const monitor = createMonitor({ loopLag: false, promises: false, logger: { warn() {} }, onReport() {} });
monitor.start();
const { validate, generate } = internals(monitor).options.correlation;

const als = new AsyncLocalStorage();
const store = { id: 'bench-id-1' };
const noop = () => 0;
const uuid = randomUUID();

// A request and a response as far as the adapters' shared handler looks at them.
class FakeResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableFinished = true;
  setHeader() {}
}
const fakeRequest = (headers) => ({ method: 'GET', url: '/hello', headers, rawHeaders: [] });
const handle = createHttpHandler(monitor, { route: () => '/hello', propagate: enablePropagation });
/** The hand-written floor of an HTTP scope: take or make the id, echo it, run in ALS until 'close'. */
function floorHandle(req, res, next) {
  const id = typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : randomUUID();
  res.setHeader('x-request-id', id);
  res.on('close', noop);
  return als.run({ id }, next);
}

const batch = (op) => () => {
  for (let i = 0; i < BATCH; i++) op();
};

/** [group, name, operation, setup?] */
const tasks = [
  ['scope open + close', 'AsyncLocalStorage.run(store, fn) (bare)', () => als.run(store, noop)],
  ['scope open + close', 'runInScope(scope, fn) (core primitive)', () => runInScope(store, noop)],
  ['scope open + close', 'withCorrelationId(id, fn)', () => withCorrelationId('bench-id-1', noop)],
  [
    'scope open + close',
    'monitor.run(scope, fn) (in-flight registry, request end)',
    () => monitor.run({ correlationId: 'bench-id-1' }, noop),
  ],
  [
    'HTTP request scope (fake req/res, until close)',
    'hand-written ALS floor, id generated',
    () => {
      const res = new FakeResponse();
      floorHandle(fakeRequest({}), res, noop);
      res.emit('close');
    },
  ],
  [
    'HTTP request scope (fake req/res, until close)',
    'loopsight handler, id generated',
    () => {
      const res = new FakeResponse();
      const req = fakeRequest({});
      handle(req, res, req, noop);
      res.emit('close');
    },
  ],
  [
    'HTTP request scope (fake req/res, until close)',
    'loopsight handler, incoming id validated',
    () => {
      const res = new FakeResponse();
      const req = fakeRequest({ 'x-request-id': uuid });
      handle(req, res, req, noop);
      res.emit('close');
    },
  ],
  ['read the id inside a scope', 'als.getStore() (bare)', () => als.getStore(), (fn) => als.run(store, fn)],
  ['read the id inside a scope', 'currentScope()', () => currentScope(), (fn) => runInScope({ correlationId: 'x', startedAt: 0 }, fn)],
  [
    'read the id inside a scope',
    'getCorrelationId()',
    () => getCorrelationId(),
    (fn) => runInScope({ correlationId: 'x', startedAt: 0 }, fn),
  ],
  ['read the id outside a scope', 'getCorrelationId()', () => getCorrelationId()],
  ['id validation', 'default validate(uuid) (resolved option)', () => validate(uuid)],
  [
    'id validation',
    'default validate(128 chars)',
    (
      (long) => () =>
        validate(long)
    )('a'.repeat(128)),
  ],
  ['id generation', 'default generate() (randomUUID)', () => generate()],
  ['id generation', 'crypto.randomUUID() (bare)', () => randomUUID()],
];

const bench = new Bench({ time: 400, warmupTime: 100 });
for (const [group, name, op, around] of tasks) {
  const run = batch(op);
  bench.add(`${group}: ${name}`, around ? () => around(run) : run);
}
await bench.run();
await monitor.stop();

const rows = bench.tasks.map((task) => {
  const r = task.result;
  const [group, name] = task.name.split(': ');
  const ns = (ms) => (ms * 1e6) / BATCH;
  return {
    group,
    name,
    nsPerOp: ns(r.latency.p50),
    nsMean: ns(r.latency.mean),
    rme: r.latency.rme,
    samples: r.latency.samplesCount ?? r.latency.samples?.length,
  };
});
if (json) {
  console.log(JSON.stringify({ node: process.version, batch: BATCH, rows }, null, 2));
} else {
  console.log(`Node ${process.version}; tinybench, ${BATCH} operations per sample, median ns per operation\n`);
  console.log('| what | how | ns/op | ± % |\n| --- | --- | ---: | ---: |');
  for (const r of rows) console.log(`| ${r.group} | ${r.name} | ${r.nsPerOp.toFixed(0)} | ${r.rme.toFixed(1)} |`);
}
