// Where loopsight's per-request time goes: the adapters' shared handler on a request whose response
// then closes, in a loop, next to the hand-written AsyncLocalStorage floor. With --profile, a CPU
// profile of the loopsight loop alone, summed by function (ns per request). Run with the packages built:
//   node micro/request-path.mjs [--profile]
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Session } from 'node:inspector/promises';
import { enablePropagation } from '@loopsight/context';
import { createMonitor } from '@loopsight/core';
import { createHttpHandler } from '@loopsight/core/adapter';

const N = 2_000_000;
const profile = process.argv.includes('--profile');

const monitor = createMonitor({ loopLag: false, promises: false, logger: { warn() {} }, onReport() {} });
monitor.start();
const als = new AsyncLocalStorage();
const noop = () => 0;

// A response as far as the handler looks at it.
class FakeResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableFinished = true;
  setHeader() {}
}
const handle = createHttpHandler(monitor, { route: () => '/hello', propagate: enablePropagation });

function floor(req, res) {
  const id = typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : randomUUID();
  res.setHeader('x-request-id', id);
  res.on('close', noop);
  als.run({ id }, noop);
}
const loopsight = (req, res) => handle(req, res, req, noop);
const none = () => {};

function loop(fn) {
  for (let i = 0; i < N; i++) {
    const req = { method: 'GET', url: '/hello', headers: {}, rawHeaders: [] };
    const res = new FakeResponse();
    fn(req, res);
    res.emit('close');
  }
}
function time(fn) {
  const t = process.hrtime.bigint();
  loop(fn);
  return Number(process.hrtime.bigint() - t) / N;
}

for (const fn of [none, floor, loopsight]) loop(fn); // warm-up
const rows = { none: [], floor: [], loopsight: [] };
for (let round = 0; round < 5; round++) {
  rows.none.push(time(none));
  rows.floor.push(time(floor));
  rows.loopsight.push(time(loopsight));
}
const med = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const base = med(rows.none);
console.log(`Node ${process.version}; ${N} requests a round, 5 rounds, median ns per request above the bare loop (${base.toFixed(0)} ns)`);
console.log(`floor      ${(med(rows.floor) - base).toFixed(0)} ns`);
console.log(`loopsight  ${(med(rows.loopsight) - base).toFixed(0)} ns`);

if (profile) {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 20 });
  await session.post('Profiler.start');
  loop(loopsight);
  const { profile: p } = await session.post('Profiler.stop');
  const self = new Map();
  const byNode = new Map(p.nodes.map((n) => [n.id, n]));
  for (let i = 0; i < p.samples.length; i++) {
    const n = byNode.get(p.samples[i]);
    const { functionName, url, lineNumber } = n.callFrame;
    const key = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  console.log('\nself time by function, ns per request of the loopsight loop:');
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${((v * 1000) / N).toFixed(0).padStart(6)}  ${k}`);
  console.log(`${((total * 1000) / N).toFixed(0).padStart(6)}  total`);
}
await monitor.stop();
