import { createServer } from 'node:net';

/** A free TCP port (listen on 0, then close), for a server the test does not start itself. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A port that is free together with the `count - 1` ports after it (listen on each, then close). */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await freePort();
    const taken = await Promise.all(
      Array.from({ length: count - 1 }, (_, i) => {
        return new Promise<boolean>((resolve) => {
          const server = createServer();
          server.once('error', () => resolve(true));
          server.listen(first + i + 1, () => server.close(() => resolve(false)));
        });
      }),
    );
    if (!taken.includes(true)) return first;
  }
  throw new Error(`no run of ${count} free ports in 50 tries`);
}
