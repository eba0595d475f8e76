/**
 * Runs child-process scenarios ahead of the tests that assert on them, `lanes` at a time, in the
 * order given: each test awaits its own result. Nothing starts before the first test asks, and a
 * scenario that fails rejects only its own test. For scenarios that mostly wait (a child starting,
 * sleeps, short injected blocks): their assertions must hold with `lanes` of them side by side.
 */
export function ahead<T>(lanes: number, scenarios: Record<string, () => Promise<T>>): (name: string) => Promise<T> {
  let started: Map<string, Promise<T>> | undefined;
  const start = () => {
    const results = new Map<string, Promise<T>>();
    const queue = Object.entries(scenarios);
    const settled = new Map<string, { resolve: (v: T) => void; reject: (e: unknown) => void }>();
    for (const [name] of queue) {
      results.set(
        name,
        new Promise<T>((resolve, reject) => {
          settled.set(name, { resolve, reject });
        }),
      );
      // Awaited by its test; until then a rejection is not an unhandled one.
      results.get(name)?.catch(() => {});
    }
    const lane = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [name, scenario] = next;
        const { resolve, reject } = settled.get(name) as { resolve: (v: T) => void; reject: (e: unknown) => void };
        await scenario().then(resolve, reject);
      }
    };
    for (let i = 0; i < lanes; i++) void lane();
    return results;
  };
  return (name) => {
    started ??= start();
    const result = started.get(name);
    if (!result) throw new Error(`no scenario named ${name}`);
    return result;
  };
}
