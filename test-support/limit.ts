/**
 * Runs at most `n` of the functions passed to it at once, the others in turn: for tests that run
 * child processes side by side (mostly waiting), a few at a time, so their margins still hold on
 * a loaded machine. Time spent waiting for a turn counts toward the test's timeout: give such
 * tests one that covers the turns before theirs.
 */
export function limit(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (running >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
