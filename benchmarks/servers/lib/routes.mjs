// What every benchmark server serves, whatever the framework and variant:
//   GET /hello   → { hello: 'world' }    the hello-world route (the worst case for any per-request cost)
//   GET /awaits  → { sum: 45 }           ten awaits per request, for the promise tracker's cost per promise
// configs.mjs names the route each configuration is measured on; run.mjs checks the body.
import { randomUUID } from 'node:crypto';

export const ROUTES = Object.freeze({
  '/hello': { hello: 'world' },
  '/awaits': { sum: 45 },
});

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
