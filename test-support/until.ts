const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` every `everyMs` until it holds or `ms` have passed; resolves whether it held. For
 * state a test then asserts on with its own message (a report delivered, threads gone): waiting on
 * the state, not a fixed sleep, holds on a loaded machine and is quick on an idle one.
 */
export async function until(check: () => boolean | Promise<boolean>, ms = 5_000, everyMs = 25): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= end) return false;
    await sleep(everyMs);
  }
}

/** Polls `fn` until it gives a value and resolves that value; rejects naming `what` after `ms`. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, ms = 15_000, everyMs = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
