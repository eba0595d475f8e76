// A Hono service on @hono/node-server with loopsight, sending itself a few requests and printing
// what loopsight saw. Run it with `npx pnpm@10.34.9 build && node examples/hono/index.js`.
import { serve } from '@hono/node-server';
import { getCorrelationId } from '@loopsight/context';
import { loopsight } from '@loopsight/hono';
import { prometheusExporter, scrape } from '@loopsight/prometheus';
import { Hono } from 'hono';
import { Registry } from 'prom-client';

/** Blocks the event loop: the kind of handler loopsight exists to find. */
function buildReport(ms) {
  const end = performance.now() + ms;
  let rows = 0;
  while (performance.now() < end) rows++;
  return rows;
}

/** Pretends to email a receipt. */
async function sendReceipt(order) {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return `receipt for ${order}`;
}

const registry = new Registry();
const reports = [];
// Promise tracking in full mode, as in development and CI; production samples (the default).
const ls = loopsight({
  promises: { mode: 'full' },
  exporters: [prometheusExporter({ registry })],
  onReport: (report) => reports.push(report),
});

const app = new Hono();
app.use(ls); // first
const users = new Hono();
users.get('/:id', (c) => c.json({ user: c.req.param('id'), correlationId: getCorrelationId(), requestId: c.get('requestId') }));
app.route('/api/users', users);
app.get('/api/reports/daily', (c) => c.json({ rows: buildReport(350), correlationId: getCorrelationId() }));
app.post('/api/checkout', (c) => {
  // A missing `await`: nobody learns whether the receipt went out. loopsight reports it as floating.
  sendReceipt('order-1');
  return c.json({ correlationId: getCorrelationId() }, 202);
});
app.get('/metrics', async (c) => {
  const { contentType, body } = await scrape(registry);
  return c.body(body, 200, { 'content-type': contentType });
});

const seen = [];
ls.monitor.on('request', (r) => seen.push(r));

const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
await new Promise((resolve) => server.once('listening', resolve));
const base = `http://127.0.0.1:${server.address().port}`;

async function call(path, init = {}) {
  const res = await fetch(base + path, init);
  console.log(`${init.method ?? 'GET'} ${path} → ${res.status} x-request-id: ${res.headers.get('x-request-id')}`);
  console.log(`  ${await res.text()}`);
}

await call('/api/users/42', { headers: { 'x-request-id': 'checkout-7f3a' } });
await call('/api/users/43');
await call('/api/users/44', { headers: { 'x-request-id': '<script>alert(1)</script>' } });
await call('/api/reports/daily', { headers: { 'x-request-id': 'report-1' } });
await call('/api/checkout', { method: 'POST', headers: { 'x-request-id': 'order-1' } });
await new Promise((resolve) => setTimeout(resolve, 500));

console.log('\nrequests:');
for (const r of seen) console.log(`  ${r.method} ${r.route} ${r.status} ${r.durationMs.toFixed(1)} ms ${r.correlationId}`);
console.log('\nreports:');
for (const r of reports) {
  const where = r.culprit ? `${r.culprit.functionName} (${r.culprit.url.split('/').pop()}:${r.culprit.line})` : '?';
  const what = r.type === 'stall' ? `stall ${r.durationMs} ms` : `promise ${r.kind}`;
  console.log(`  ${what} in ${where}, request ${r.request?.correlationId} ${r.request?.method} ${r.request?.route}`);
}
console.log('\nmetrics:');
const text = await (await fetch(`${base}/metrics`)).text();
for (const line of text.split('\n')) if (/^loopsight_(event_loop_stalls_total|promises_total)\{/.test(line)) console.log(`  ${line}`);

server.close();
await ls.monitor.stop();
