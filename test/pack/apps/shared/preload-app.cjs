// A service that does not import loopsight, started with NODE_OPTIONS=--import=@loopsight/register
// (or --require=): serves itself one request that calls an upstream, reads LOOPSIGHT_METRICS_PORT,
// prints what it saw and exits on its own.
const http = require('node:http');
const diagnosticsChannel = require('node:diagnostics_channel');

const events = [];
diagnosticsChannel.subscribe('loopsight:request', (r) => events.push({ correlationId: r.correlationId, status: r.status }));

const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
const upstream = http.createServer((req, res) => res.end(JSON.stringify(req.headers['x-request-id'] ?? null)));
const server = http.createServer(async (_req, res) => {
  await new Promise((resolve) => setTimeout(resolve, 5));
  const upstreamSaw = await (await fetch(`http://127.0.0.1:${upstream.address().port}/`)).json();
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ upstreamSaw }));
});

(async () => {
  await listen(upstream);
  const port = await listen(server);
  const res = await fetch(`http://127.0.0.1:${port}/orders/7`, { headers: { 'x-request-id': 'preload-42' } });
  const body = await res.json();
  const metrics = await (await fetch(`http://127.0.0.1:${process.env.LOOPSIGHT_METRICS_PORT}/metrics`)).text();
  process.stdout.write(
    `${JSON.stringify({
      status: res.status,
      echoed: res.headers.get('x-request-id'),
      body,
      events,
      metrics: metrics.includes('loopsight_event_loop_delay_seconds_bucket'),
    })}\n`,
  );
  for (const s of [server, upstream]) {
    s.closeAllConnections();
    s.close();
  }
})();
