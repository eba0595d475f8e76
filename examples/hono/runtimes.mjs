// What @loopsight/hono does on Bun and Deno (docs/adapters.md#hono): `bun run runtimes.mjs` or
// `deno run -A runtimes.mjs` after a build. The same app is served by the runtime's own server
// (untracked, one warning) and by @hono/node-server (tracked); a 300 ms block shows what the
// watchdog can still report there.

import { serve } from '@hono/node-server';
import { getCorrelationId } from '@loopsight/context';
import { loopsight } from '@loopsight/hono';
import { Hono } from 'hono';

const out = {};
if (!globalThis.Bun && !globalThis.Deno) throw new Error('run this with bun or deno');
const ls = loopsight({ onReport: (r) => (out.report ??= r.type) });
const app = new Hono();
app.use(ls);
app.get('/users/:id', (c) => c.json({ id: getCorrelationId() ?? null }));
function block(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}
app.get('/block', (c) => {
  block(300);
  return c.json({ id: getCorrelationId() ?? null });
});
const seen = [];
ls.monitor.on('request', (r) => seen.push([r.route, r.correlationId]));

/** The runtime's own server: Bun.serve or Deno.serve. */
async function serveNative() {
  if (globalThis.Bun) {
    const s = globalThis.Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch });
    return { port: s.port, close: () => s.stop(true) };
  }
  const s = globalThis.Deno.serve({ port: 0, hostname: '127.0.0.1', onListen() {} }, app.fetch);
  return { port: s.addr.port, close: () => s.shutdown() };
}
out.runtime = globalThis.Bun
  ? `bun ${globalThis.Bun.version}`
  : globalThis.Deno
    ? `deno ${globalThis.Deno.version.deno}`
    : `node ${process.version}`;
const native = await serveNative();
let res = await fetch(`http://127.0.0.1:${native.port}/users/1`, { headers: { 'x-request-id': 'native-1' } });
out.nativeServer = { status: res.status, echoed: res.headers.get('x-request-id'), body: await res.json() };
await native.close();

const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
await new Promise((r) => server.once('listening', r));
res = await fetch(`http://127.0.0.1:${server.address().port}/users/2`, { headers: { 'x-request-id': 'node-server-2' } });
out.nodeServer = { status: res.status, echoed: res.headers.get('x-request-id'), body: await res.json() };
const stalls = [];
ls.monitor.on('stall', (r) =>
  stalls.push({ d: r.durationMs, src: r.stackSource, culprit: r.culprit?.functionName, id: r.request?.correlationId }),
);
await new Promise((r) => setTimeout(r, 500));
res = await fetch(`http://127.0.0.1:${server.address().port}/block`, { headers: { 'x-request-id': 'node-server-3' } });
await res.json();
await new Promise((r) => setTimeout(r, 800));
out.stalls = stalls;
out.seen = seen;
server.close();
await ls.monitor.stop();
console.log(JSON.stringify(out));
