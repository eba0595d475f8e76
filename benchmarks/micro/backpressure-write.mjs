// Cost per res.write() of the backpressure watch's patch (ServerResponse.prototype.write wrapped
// once per process), on the fast path: the write is not told to wait. Run with the packages built:
//   node micro/backpressure-write.mjs [--rounds 10]
//
// A real ServerResponse on a socket that takes every byte at once (a Writable that calls back
// synchronously and does not cork), so that what is timed is Node's own write path (chunked
// framing included) with and without the wrapper. The two are alternated round by round in one
// process; each round times BATCH writes of 1 KiB on one response. The patch is on while a monitor
// (backpressure on, the default) runs, and off once it stopped.
import { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { createMonitor } from '@loopsight/core';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 10;
const BATCH = 100_000;
const chunk = Buffer.alloc(1024, 120);

function response() {
  const socket = new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
    writev(_chunks, callback) {
      callback();
    },
  });
  // The response corks its socket until the next tick: a synchronous loop would fill the buffer.
  socket.cork = () => {};
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  const res = new ServerResponse(req);
  res.assignSocket(socket);
  return res;
}

function time() {
  const res = response();
  res.write(chunk);
  let falses = 0;
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) {
    if (!res.write(chunk)) falses++;
  }
  const ns = ((performance.now() - t0) * 1e6) / BATCH;
  if (falses > 0) throw new Error(`${falses} writes were told to wait: the fast path was not what was timed`);
  return ns;
}

const original = ServerResponse.prototype.write;
const monitor = createMonitor({ loopLag: false, promises: false, onReport() {} });
const results = { off: [], on: [], 'off again': [] };
// Warm-up of both paths.
for (let i = 0; i < 2; i++) {
  time();
  monitor.start();
  time();
  await monitor.stop();
}
for (let r = 0; r < rounds; r++) {
  // Rotated: each mode takes each place in turn. 'off again' is the A/A control.
  const modes = ['off', 'on', 'off again'];
  const order = modes.map((_, i) => modes[(i + r) % modes.length]);
  for (const mode of order) {
    if (mode === 'on') monitor.start();
    if ((ServerResponse.prototype.write !== original) !== (mode === 'on')) throw new Error('the patch is not in the state measured');
    results[mode].push(time());
    if (mode === 'on') await monitor.stop();
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const off = median(results.off);
const on = median(results.on);
const control = median(results['off again']);
console.log(`Node ${process.version}, ${rounds} rounds of ${BATCH} writes of 1 KiB, rotated`);
console.log('| res.write() of 1 KiB, fast path | ns per write (median of rounds) |');
console.log('|---|---:|');
console.log(`| unpatched (backpressure: false, or no monitor) | ${off.toFixed(1)} |`);
console.log(`| patched (backpressure on) | ${on.toFixed(1)} |`);
console.log(`| unpatched again (A/A control) | ${control.toFixed(1)} |`);
console.log(`| patched − unpatched | ${(on - off).toFixed(1)} (${(((on - off) / off) * 100).toFixed(1)} %) |`);
console.log(`| A/A control − unpatched | ${(control - off).toFixed(1)} (${(((control - off) / off) * 100).toFixed(1)} %) |`);
