import { EventEmitter } from 'node:events';
import { stat } from 'node:fs';
import { getCorrelationId } from '@loopsight/context';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Reads the correlation id after every kind of async hop a handler makes: timers, fs callbacks,
 * setImmediate, an EventEmitter and Promise.all. Every entry must equal the request's id.
 */
export async function hops(): Promise<(string | undefined)[]> {
  const seen: (string | undefined)[] = [getCorrelationId()];
  await sleep(Math.random() * 5);
  seen.push(getCorrelationId());
  await new Promise<void>((resolve, reject) =>
    stat(import.meta.filename ?? process.cwd(), (error) => {
      seen.push(getCorrelationId());
      if (error) reject(error);
      else resolve();
    }),
  );
  await new Promise<void>((resolve) =>
    setImmediate(() => {
      seen.push(getCorrelationId());
      resolve();
    }),
  );
  const emitter = new EventEmitter();
  const heard = new Promise<string | undefined>((resolve) => emitter.once('ping', () => resolve(getCorrelationId())));
  setTimeout(() => emitter.emit('ping'), 1);
  seen.push(await heard);
  const parallel = await Promise.all(
    [3, 1, 2].map(async (ms) => {
      await sleep(ms);
      return getCorrelationId();
    }),
  );
  seen.push(...parallel);
  return seen;
}

/** Blocks the event loop for `ms`: a stall of known length. */
export function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}
