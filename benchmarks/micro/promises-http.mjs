// Overhead of the promise tracker's modes on an Express 5 app with loopsight, against the same app
// with `promises: false`, on a hello route and on a promise-heavy route (10 awaits per request).
// Servers run side by side; load alternates between them round by round. The figure is server CPU
// time per request (robust to a busy machine, unlike throughput), as a ratio to `off`.
//   node benchmarks/micro/promises-http.mjs  (after a build; ROUNDS=5 DURATION=5 to change)
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../package.json', import.meta.url));
const autocannon = require('autocannon');
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const DURATION = Number(process.env.DURATION ?? 4);
const modes = ['off', 'sampled', 'full'];
const routes = ['/hello', '/awaits'];

function start(mode) {
  const child = fork(new URL('./promises-server.mjs', import.meta.url), [mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve) => child.once('message', (m) => resolve({ mode, child, port: m.port })));
}
const ask = (child, message) =>
  new Promise((resolve) => {
    child.once('message', resolve);
    child.send(message);
  });
const load = (port, path, duration) =>
  new Promise((resolve, reject) =>
    autocannon({ url: `http://127.0.0.1:${port}${path}`, connections: 20, duration }, (error, result) =>
      error ? reject(error) : resolve(result),
    ),
  );

const servers = await Promise.all(modes.map(start));
const cpu = Object.fromEntries(routes.flatMap((r) => modes.map((m) => [`${r} ${m}`, []])));
for (const s of servers) for (const r of routes) await load(s.port, r, 1); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  for (const route of routes) {
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      await ask(s.child, 'begin');
      const result = await load(s.port, route, DURATION);
      const { micros } = await ask(s.child, 'end');
      cpu[`${route} ${s.mode}`].push(micros / result.requests.total);
    }
  }
}
for (const s of servers) s.child.send('stop');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  `Node ${process.version}, ${ROUNDS} rounds of ${DURATION} s per configuration, 20 connections; median server CPU µs per request\n`,
);
console.log('| route | mode | CPU µs / request | ratio to off |');
console.log('|---|---|---:|---:|');
for (const route of routes) {
  const base = median(cpu[`${route} off`]);
  for (const mode of modes) {
    const m = median(cpu[`${route} ${mode}`]);
    console.log(`| ${route} | ${mode} | ${m.toFixed(1)} | ${(m / base).toFixed(3)} |`);
  }
}
