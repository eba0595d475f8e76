// Waiting in the watchdog thread. Every timer is unref'd: the control port's listener is what
// keeps the thread alive, and a nap ends early when the process exits or an awaited answer comes.

/** Naps that end at their time, or all at once when `wakeAll()` is called. */
export class Naps {
  readonly #wakers = new Set<() => void>();

  nap(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms).unref();
      this.#wakers.add(done);
    });
  }

  wakeAll(): void {
    for (const wake of this.#wakers) wake();
  }
}

/** Rejects when `promise` is not settled within `ms`: for answers due at once. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
