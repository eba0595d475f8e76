// The test's side of every app (not what a user writes): serve on an ephemeral port, send real
// requests with fetch, and report what came back and what the monitor emitted.
const http = require('node:http');

/** Serves a request listener (an Express app, a Koa callback) on 127.0.0.1, port 0. */
async function listen(handler, monitor) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    monitor,
    async close() {
      await new Promise((resolve) => server.close(resolve));
      await monitor.stop();
    },
  };
}

async function get(url, headers) {
  const response = await fetch(url, { headers });
  const text = await response.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, echoed: response.headers.get('x-request-id'), body };
}

/** One request that brings an id, one that does not; then the app is closed and its 'request' events read. */
async function probe(name, app) {
  const events = [];
  app.monitor.on('request', (r) => events.push({ correlationId: r.correlationId, route: r.route, status: r.status }));
  const given = await get(`${app.url}/users/42`, { 'x-request-id': `${name}-42` });
  const generated = await get(`${app.url}/users/7`, {});
  await app.close();
  return { name, given, generated, events };
}

module.exports = { listen, probe };
