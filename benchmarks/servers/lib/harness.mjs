// The server side of the benchmark protocol. A server file builds its app for one variant, then
// calls serve(). The parent talks to it over the IPC channel of child_process.fork():
//
//   child  → parent  { type: 'ready', port, variant, pid }         once listening on 127.0.0.1:0
//   parent → child   { type: 'begin', seq }  → { type: 'begun', seq }   start of a measured phase
//   parent → child   { type: 'end', seq }    → { type: 'ended', seq, cpu, requests, peakRss, rss }
//   parent → child   { type: 'stop' }                               close and exit
//
// The server exits by itself when the parent goes away (the IPC channel closes), so a crashed or
// killed harness leaves nothing behind.

const RSS_SAMPLE_MS = 100;

/**
 * The variant named on the command line (`node servers/express.mjs loopsight`), checked against
 * the variants the server file knows.
 */
export function pickVariant(variants) {
  const name = process.argv[2];
  if (!Object.hasOwn(variants, name)) {
    console.error(`unknown variant ${JSON.stringify(name)}; known: ${Object.keys(variants).join(', ')}`);
    process.exit(2);
  }
  return { name, setup: variants[name] };
}

/**
 * Reports a listening http.Server to the parent and answers its measurement requests.
 * @param {import('node:http').Server} server already listening on 127.0.0.1, port 0
 * @param {string} variant
 * @param {() => Promise<void> | void} [close] how to shut the app down (defaults to server.close)
 */
export function serve(server, variant, close = () => new Promise((resolve) => server.close(() => resolve()))) {
  if (typeof process.send !== 'function') {
    console.error('this server is started by benchmarks/run.mjs (it needs an IPC channel)');
    process.exit(2);
  }

  // Requests served: counted on the http.Server itself, the same listener for every framework.
  let requests = 0;
  server.on('request', () => {
    requests++;
  });

  // Peak RSS of the current measured phase (or since start, before the first phase).
  // process.memoryUsage.rss() is the same figure as process.memoryUsage().rss without walking the heap.
  let peakRss = process.memoryUsage.rss();
  const sampleRss = () => {
    const rss = process.memoryUsage.rss();
    if (rss > peakRss) peakRss = rss;
    return rss;
  };
  setInterval(sampleRss, RSS_SAMPLE_MS).unref();

  let phase;
  process.on('message', (message) => {
    if (message === null || typeof message !== 'object') return;
    switch (message.type) {
      case 'begin': {
        peakRss = process.memoryUsage.rss();
        phase = { requests, cpu: process.cpuUsage() };
        process.send({ type: 'begun', seq: message.seq });
        break;
      }
      case 'end': {
        const cpu = process.cpuUsage(phase?.cpu);
        const rss = sampleRss();
        process.send({ type: 'ended', seq: message.seq, cpu, requests: requests - (phase?.requests ?? 0), peakRss, rss });
        phase = undefined;
        break;
      }
      case 'stop': {
        Promise.resolve()
          .then(close)
          .finally(() => process.exit(0));
        // Keep-alive sockets can hold server.close() open; do not wait for them long.
        setTimeout(() => process.exit(0), 1000).unref();
        break;
      }
    }
  });
  process.on('disconnect', () => process.exit(0));

  const { port } = server.address();
  process.send({ type: 'ready', port, variant, pid: process.pid });
}

export const HOST = '127.0.0.1';
