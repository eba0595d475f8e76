import type { IncomingHttpHeaders } from 'node:http';
import { WebSocket } from 'ws';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A client connection, with the headers of the handshake response. */
export interface Client {
  ws: WebSocket;
  handshake: IncomingHttpHeaders;
  /** Sends `message` (JSON) and resolves the server's next answer, parsed. */
  ask(message: unknown): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export function connect(url: string, headers: Record<string, string> = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    let handshake: IncomingHttpHeaders = {};
    ws.once('upgrade', (res) => {
      handshake = res.headers;
    });
    ws.once('error', reject);
    const answers: ((v: Record<string, unknown>) => void)[] = [];
    ws.on('message', (data) => answers.shift()?.(JSON.parse(String(data)) as Record<string, unknown>));
    ws.once('open', () =>
      resolve({
        ws,
        handshake,
        ask(message) {
          return new Promise((answer) => {
            answers.push(answer);
            ws.send(JSON.stringify(message));
          });
        },
        close() {
          if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
          return new Promise((done) => {
            ws.once('close', () => done());
            ws.close();
          });
        },
      }),
    );
  });
}

/** A message's JSON `type`, the usual way to name a kind of message. */
export function typeOf(data: unknown): string | undefined {
  try {
    const type = (JSON.parse(String(data)) as { type?: unknown }).type;
    return typeof type === 'string' ? type : undefined;
  } catch {
    return undefined;
  }
}
