// What every benchmark server serves, whatever the framework and variant:
//   GET /hello   → { hello: 'world' }    the hello-world route (the worst case for any per-request cost)
//   GET /awaits  → { sum: 45 }           ten awaits per request, for the promise tracker's cost per promise
//   GET /stream  → { chunks: [64 × 1000 characters] }  64 res.write() calls per request, awaiting 'drain'
//                                        when told to wait: the backpressure watch's cost per write
// configs.mjs names the route each configuration is measured on; run.mjs checks the body.
import { randomUUID } from 'node:crypto';

const CHUNK = 'x'.repeat(1000);
const STREAM_CHUNKS = 64;

export const ROUTES = Object.freeze({
  '/hello': { hello: 'world' },
  '/awaits': { sum: 45 },
  '/stream': { chunks: Array.from({ length: STREAM_CHUNKS }, () => CHUNK) },
});

const once = (emitter, event) => new Promise((resolve) => emitter.once(event, resolve));

/** The /stream handler's work on a Node response: 64 writes of about 1 KB, the way well-behaved code writes. */
export async function streamTo(res) {
  res.setHeader('content-type', 'application/json');
  for (let i = 0; i < STREAM_CHUNKS; i++) {
    const piece = `${i === 0 ? '{"chunks":[' : ','}"${CHUNK}"`;
    if (!res.write(piece)) await once(res, 'drain');
  }
  res.end(']}');
}

async function step(i) {
  await null;
  return i;
}

/** The /awaits handler's work: ten awaits of an async function (≈ 30 promises per request). */
export async function tenAwaits() {
  let sum = 0;
  for (let i = 0; i < 10; i++) sum += await step(i);
  return { sum };
}

/** The incoming x-request-id, or a fresh one: what the peers' id middlewares are configured to do. */
export function incomingOrNew(headers) {
  const id = headers['x-request-id'];
  return typeof id === 'string' ? id : randomUUID();
}
