import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { connect } from 'node:net';

const writers = createRequire(import.meta.url)('./fixtures/writers.cjs') as {
  CHUNK_BYTES: number;
  TOTAL_BYTES: number;
  writeIgnoring(res: ServerResponse, total?: number): void;
  writeAwaiting(res: ServerResponse, total?: number): Promise<void>;
  IGNORING_WRITE: { file: string; line: number };
};

/** 64 KB chunks, 64 MB in all: far past any high-water mark. */
export const { TOTAL_BYTES, writeIgnoring, writeAwaiting, IGNORING_WRITE } = writers;
const { CHUNK_BYTES } = writers;

export interface SlowClient {
  /** Bytes of the body (and headers) read so far. */
  readonly received: number;
  /** Reads as fast as it can from now on; resolves once the server closed the connection. */
  finish(): Promise<number>;
  destroy(): void;
}

/**
 * A raw TCP client that sends `GET path` and then reads 64 KB every 50 ms (the socket paused in
 * between): a slow consumer. `Connection: close`, so the end of the response is the end of the socket.
 */
export async function slowClient(url: string, path: string, headers: Record<string, string> = {}): Promise<SlowClient> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  await once(socket, 'connect');
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n${extra}\r\n`);
  let received = 0;
  const ended = new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
  });
  socket.on('error', () => {});
  socket.pause();
  const timer = setInterval(() => {
    const chunk = socket.read(CHUNK_BYTES) ?? socket.read();
    if (chunk !== null) received += (chunk as Buffer).length;
  }, 50);
  return {
    get received() {
      return received;
    },
    async finish() {
      clearInterval(timer);
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      socket.resume();
      await ended;
      return received;
    },
    destroy() {
      clearInterval(timer);
      socket.destroy();
    },
  };
}
