// What the handlers of the test apps run: application code, as loopsight sees it (this file is the
// "calling file" the reports must point at).
import { stat } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { detach } from '@loopsight/promises';

/** Work that takes a little while. */
export async function audit(ms = 20): Promise<string> {
  await sleep(ms);
  return 'audited';
}

async function* pages(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    await sleep(1);
    yield i;
  }
}

const noop = (): void => {};

export interface Context {
  /** Base URL of a local upstream server answering JSON. */
  upstream: string;
}

/** Correct code: every promise is observed. None of these may produce a report. */
export const correct: Record<string, (ctx: Context) => Promise<unknown>> = {
  await: async () => await audit(),
  'await non-promise': async () => {
    await 1;
    await null;
    return 'ok';
  },
  // biome-ignore lint/suspicious/noThenProperty: a thenable (a query builder, say) is what this case is about
  'await thenable': async () => await { then: (resolve: (v: number) => void) => setTimeout(() => resolve(1), 2) },
  'Promise.all': async () => await Promise.all([audit(1), audit(2), 3]),
  'Promise.allSettled': async () => await Promise.allSettled([audit(1), Promise.reject(new Error('expected'))]),
  'Promise.race': async () => await Promise.race([audit(1), audit(30)]),
  'Promise.any': async () => await Promise.any([audit(1), Promise.reject(new Error('expected'))]),
  '.catch()-terminated chain': async () => {
    audit(1)
      .then((v) => v.toUpperCase())
      .catch(noop);
    return 'ok';
  },
  'then(a, b)': async () => {
    audit(1).then(noop, noop);
    return 'ok';
  },
  '.finally() awaited': async () => await audit(1).finally(noop),
  'util.promisify': async () => await promisify(stat)(import.meta.dirname ?? '.'),
  'for await (async generator)': async () => {
    const seen: number[] = [];
    for await (const page of pages(3)) seen.push(page);
    return seen;
  },
  'for await (stream)': async () => {
    const seen: string[] = [];
    for await (const chunk of Readable.from(['a', 'b', 'c'])) seen.push(String(chunk));
    return seen;
  },
  'for await (array of values)': async () => {
    const seen: number[] = [];
    for await (const value of [1, 2]) seen.push(value);
    return seen;
  },
  'awaited fetch': async ({ upstream }) => await (await fetch(`${upstream}/data`)).json(),
  'a returned promise': async () => audit(1),
  'returned from a plain function': () => audit(1),
  'new Promise resolved with a promise': async () => await new Promise((resolve) => resolve(audit(1))),
  'Promise.resolve(promise)': async () => await Promise.resolve(audit(1)),
  'awaited later, after it settled': async () => {
    const early = audit(1);
    await audit(20);
    return await early;
  },
  'detach()': async () => {
    detach(audit(1));
    return 'ok';
  },
  'detach() of a chain': async () => {
    detach(audit(1).catch(noop));
    return 'ok';
  },
};

/** An async function called without await: the floating promise every framework test looks for. */
export async function floats(): Promise<string> {
  audit(5);
  return 'sent';
}

/** A promise still pending long after the response went out; its chain is handled, so it only leaks. */
export async function leaks(): Promise<string> {
  audit(1_500).catch(noop);
  return 'sent';
}

/** The line numbers the floating report must point at (kept in sync by the test, read from this file). */
export const FLOATS_CALL = 'audit(5);';

/** Many promises pending at once in one request: more than a small cap. */
export async function many(): Promise<number> {
  const all = Array.from({ length: 50 }, () => audit(50));
  return (await Promise.all(all)).length;
}
