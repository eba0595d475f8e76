import { createServer } from 'node:net';

// Ports handed out here come from below Linux's ephemeral range (32768-60999), where no listen(0)
// or outgoing connection takes them: a port freed again inside that range can be the very one the
// kernel hands the next listen(0) (seen: a service's own port answering on the metrics port a
// test had reserved, once in ten runs beside other tests).
const LOW = 20_000;
const HIGH = 32_767;

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port that is free together with the `count - 1` ports after it (listen on each, then close). */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const first = LOW + Math.floor(Math.random() * (HIGH - LOW - count + 2));
    const free = await Promise.all(Array.from({ length: count }, (_, i) => tryListen(first + i)));
    if (free.every(Boolean)) return first;
  }
  throw new Error(`no run of ${count} free ports in 100 tries`);
}

/** A free TCP port, for a server the test does not start itself. */
export function freePort(): Promise<number> {
  return freePortRun(1);
}
