// The README's demo: an Express service with loopsight, sending itself a few requests.
// Run it with `npx pnpm@10.34.9 demo` from the repository root.
import http from 'node:http';
import { getCorrelationId } from '@loopsight/context';
import { createDashboard } from '@loopsight/dashboard';
import { loopsight } from '@loopsight/express';
import express from 'express';

/** Blocks the event loop: the kind of handler loopsight exists to find. */
function buildReport(ms) {
  const end = performance.now() + ms;
  let rows = 0;
  while (performance.now() < end) rows++;
  return rows;
}

// A downstream service that answers with the id it received.
const inventory = http.createServer((req, res) => res.end(JSON.stringify({ sawRequestId: req.headers['x-request-id'] ?? null })));
await new Promise((resolve) => inventory.listen(0, '127.0.0.1', resolve));
const inventoryUrl = `http://127.0.0.1:${inventory.address().port}`;

const app = express();
// Stall and promise reports go to stderr as JSON lines by default; the demo prints them itself.
const reports = [];
// A 1 s stats window so the demo shows a complete one; the default is 10 s.
const WINDOW_MS = 1000;
// Promise tracking in full mode, as in development and CI; production samples (the default).
const middleware = loopsight({ loopLag: { windowMs: WINDOW_MS }, promises: { mode: 'full' }, onReport: (report) => reports.push(report) });
const { monitor } = middleware;
app.use(middleware);
app.use(express.json());

app.get('/users/:id', async (req, res) => {
  // No header passed by hand: loopsight adds x-request-id to outbound fetch and http requests.
  const stock = await (await fetch(`${inventoryUrl}/stock/${req.params.id}`)).json();
  res.json({ user: req.params.id, correlationId: getCorrelationId(), inventory: stock });
});
app.post('/orders', (req, res) => res.status(201).json({ items: req.body.items.length, correlationId: getCorrelationId() }));
app.get('/reports/daily', (_req, res) => res.json({ rows: buildReport(250), correlationId: getCorrelationId() }));

/** Pretends to email a receipt. */
async function sendReceipt(order) {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return `receipt for ${order}`;
}
app.post('/checkout', (_req, res) => {
  // A missing `await`: nobody learns whether the receipt went out. loopsight reports it as floating.
  sendReceipt('order-1');
  res.status(202).json({ correlationId: getCorrelationId() });
});

// The live page, for this machine only (the default authorize allows loopback clients).
app.use(createDashboard(monitor).express);

const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
// The watchdog's thread takes a moment to come up; a block before then would be timed by no one.
await new Promise((resolve) => setTimeout(resolve, 300));
const base = `http://127.0.0.1:${server.address().port}`;

const seen = [];
monitor.on('request', (r) => seen.push(r));

async function call(label, path, init = {}) {
  const t0 = performance.now();
  const res = await fetch(base + path, init);
  const body = await res.json();
  const took = `${(performance.now() - t0).toFixed(0)} ms`.padStart(7);
  console.log(`  ${label.padEnd(34)} ${res.status} ${took}  x-request-id: ${res.headers.get('x-request-id')}`);
  return body;
}

console.log('loopsight express demo\n');
console.log('Requests sent (status, time seen by the client, and the id the response echoed):');
const user = await call('GET /users/42 with x-request-id', '/users/42', { headers: { 'x-request-id': 'checkout-7f3a' } });
await call('GET /users/7 with no id', '/users/7');
await call('GET /users/9 with traceparent', '/users/9', {
  headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
});
await call('POST /orders with a hostile id', '/orders', {
  method: 'POST',
  headers: { 'content-type': 'application/json', 'x-request-id': '<script>alert(1)</script>' },
  body: JSON.stringify({ items: [1, 2, 3] }),
});
await call('POST /checkout (floats a promise)', '/checkout', { method: 'POST', headers: { 'x-request-id': 'checkout-9c1d' } });
// loopStats() covers fixed windows (1 s here) and gives the last complete one: read it until the
// window that holds the block has completed (within a window of the block) and keep that window,
// the one with the longest delay. A single read a fixed time later can land a window too late.
const windows = [];
const watch = setInterval(() => windows.push(monitor.loopStats()), 50);
const blockSent = Date.now();
// The slow one blocks the loop for 250 ms; the request sent alongside it waits for it.
await Promise.all([call('GET /reports/daily (blocks 250 ms)', '/reports/daily'), call('GET /users/1 (sent alongside)', '/users/1')]);
const windowsDone = new Promise((resolve) => setTimeout(resolve, WINDOW_MS + 200)).then(() => clearInterval(watch));
// The stall report comes from the watchdog thread once the loop runs again, the floating promise's
// once the request has ended: wait for both (at most 5 s) before printing them.
for (const end = Date.now() + 5_000; Date.now() < end; ) {
  // The block's stall, not one from before it (a loaded machine stalls on its own).
  const blockReported = reports.some((r) => r.type === 'stall' && r.at >= blockSent - 100);
  if (blockReported && reports.some((r) => r.type === 'promise')) break;
  await new Promise((resolve) => setTimeout(resolve, 20));
}
await monitor.run({ route: 'job:nightly-export', method: 'JOB' }, async () => {
  await fetch(`${inventoryUrl}/export`);
});

console.log(`\nThe downstream service saw x-request-id: ${user.inventory.sawRequestId} (propagated, not passed by hand)\n`);

console.log("What loopsight saw ('request' events: method, route template, status, time in the handler, id):");
for (const r of seen) {
  console.log(
    `  ${(r.method ?? '').padEnd(5)}${(r.route ?? '(no route)').padEnd(22)}${String(r.status ?? '-').padEnd(5)}${r.durationMs.toFixed(1).padStart(7)} ms  ${r.correlationId}`,
  );
}

const where = (f) =>
  `${f.functionName || '(anonymous)'} (${f.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '')}:${f.line}:${f.column})`;
/** The culprit, then the application's frames below it (its callers). */
function printFrames(r) {
  if (!r.culprit) return;
  console.log(`      culprit ${where(r.culprit)}`);
  const below = r.stack.slice(r.stack.indexOf(r.culprit) + 1);
  const own = below.filter((f) => !f.url.startsWith('node:') && !f.url.includes('/node_modules/'));
  for (const frame of own.slice(0, 1)) console.log(`      at ${where(frame)}`);
}
console.log('\nStall reports (the loop was blocked: by what, in which request):');
for (const r of reports.filter((report) => report.type === 'stall')) {
  const who = r.request ? `${r.request.method} ${r.request.route}  id ${r.request.correlationId}` : 'no request';
  console.log(`  ${r.durationMs.toFixed(0)} ms  ${who}  (stack: ${r.stackSource}, ${r.inflight} in flight)`);
  // The pause lands wherever the loop is, as often inside Node's own performance.now() as in the
  // handler's loop: `culprit` is the application's frame nearest the top, the line to read first.
  printFrames(r);
}

await windowsDone;
const stats = windows.reduce((a, b) => (b.max > a.max ? b : a), monitor.loopStats());
const ms = (v) => `${v.toFixed(1)} ms`;
console.log(`\nEvent loop over the ${stats.windowMs} ms window that holds the block (delay beyond the 10 ms sampling resolution):`);
console.log(
  `  p50 ${ms(stats.p50)}  p90 ${ms(stats.p90)}  p99 ${ms(stats.p99)}  max ${ms(stats.max)}  utilization ${(stats.utilization * 100).toFixed(0)}%  samples ${stats.count}`,
);
console.log('\nPromise reports (floating: never awaited; leaked: outlived its request; unhandled: a rejection nobody handled):');
for (const r of reports.filter((report) => report.type === 'promise')) {
  const who = r.request ? `${r.request.method} ${r.request.route}  id ${r.request.correlationId}` : 'no request';
  console.log(`  ${r.kind}  ${who}  (${r.ageMs} ms old)`);
  printFrames(r);
}
const rejected = monitor.counters().correlationIdsRejected;
console.log(
  `\nIncoming ids refused and replaced: ${rejected.invalid} invalid, ${rejected.too_long} too long, ${rejected.duplicate} duplicate`,
);
console.log(`In flight now: ${monitor.inflight().length}`);

// --keep leaves the service up, so that the dashboard can be opened; Ctrl-C ends it.
const keep = process.argv.includes('--keep');
console.log(`\nLive dashboard: ${base}/loopsight${keep ? '  (serving until Ctrl-C)' : '  (run with --keep to open it)'}`);
if (!keep) {
  server.close();
  inventory.close();
  await monitor.stop();
}
