// What the dashboard's chart history costs a service with no page open: the once-a-second tick's
// time (the dashboard's own timer callback, timed as it runs, then called in a loop), the history's
// memory, and the snapshot a page gets on connecting. Runs the builds: build first.
//   node --expose-gc packages/dashboard/bench/history-cost.mjs [historySeconds] [seconds]
import http from 'node:http';
import { createMonitor } from '@loopsight/core';
import { createDashboard } from '../dist/index.js';

const historySeconds = Number(process.argv[2] ?? 3600);
const seconds = Number(process.argv[3] ?? 20);
const gc = globalThis.gc ?? (() => {});
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} kB`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const monitor = createMonitor({ promises: false, onReport: () => {} });
monitor.start();
// Catch the dashboard's 1 s timer as it is made: time each run, and keep it to call directly.
const setIntervalReal = globalThis.setInterval;
let tick;
const timed = [];
globalThis.setInterval = (fn, ms, ...rest) => {
  if (ms !== 1000 || tick !== undefined) return setIntervalReal(fn, ms, ...rest);
  tick = fn;
  return setIntervalReal(() => {
    const t0 = performance.now();
    fn();
    timed.push((performance.now() - t0) * 1000);
  }, ms);
};
gc();
const before = process.memoryUsage();
const dashboard = createDashboard(monitor, { historySeconds });
globalThis.setInterval = setIntervalReal;
if (typeof tick !== 'function') throw new Error('the dashboard made no 1 s timer');
gc();
const made = process.memoryUsage();

// As in a service: one tick a second, cold.
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
// Then the history filled up (historySeconds points).
for (let i = 0; i < historySeconds; i++) tick();
gc();
const full = process.memoryUsage();
// And 20 times more: a full history does not grow (the first rounds compile the tick).
const heaps = [];
for (let round = 0; round < 20; round++) {
  for (let i = 0; i < historySeconds; i++) tick();
  gc();
  heaps.push(process.memoryUsage().heapUsed);
}
// Then the tick hot, in a loop.
const hot = [];
for (let r = 0; r < 5; r++) {
  const n = 100_000;
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) tick();
  const used = process.cpuUsage(cpu);
  hot.push((used.user + used.system) / n);
}

const server = http.createServer((req, res) => dashboard.handle(req, res) || res.writeHead(404).end());
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const abort = new AbortController();
const res = await fetch(`http://127.0.0.1:${server.address().port}/loopsight/events`, { signal: abort.signal });
const reader = res.body.getReader();
const decoder = new TextDecoder();
let snapshot = '';
const complete = () => snapshot.includes('event: snapshot') && snapshot.includes('\n\n', snapshot.indexOf('event: snapshot'));
while (!complete()) snapshot += decoder.decode((await reader.read()).value);
abort.abort();
server.close();
await monitor.stop();

console.log(`node ${process.version}, historySeconds ${historySeconds}`);
console.log(
  `tick with no page open, once a second for ${seconds} s: median ${median(timed).toFixed(0)} µs, max ${Math.max(...timed).toFixed(0)} µs on the main thread (${timed.length} ticks, the first compiles it)`,
);
console.log(`tick hot, in a loop: ${median(hot).toFixed(2)} µs CPU (median of 5 × 100,000)`);
console.log(`history allocated when the dashboard is made: ${kb(made.arrayBuffers - before.arrayBuffers)} (array buffer)`);
console.log(
  `history filled (${historySeconds} ticks): heap ${kb(full.heapUsed - made.heapUsed)}, array buffers ${kb(full.arrayBuffers - made.arrayBuffers)}`,
);
console.log(`filled 10 times more, then 10 more: heap ${kb(heaps[9] - full.heapUsed)}, then ${kb(heaps[19] - heaps[9])}`);
console.log(`snapshot sent to a page on connecting, history full: ${kb(snapshot.length)}`);
