import { limit } from './limit.js';

/**
 * Runs child-process scenarios ahead of the tests that assert on them, `lanes` at a time, in the
 * order given: each test awaits its own result. Nothing starts before the first test asks, and a
 * scenario that fails rejects only its own test. For scenarios that mostly wait (a child starting,
 * sleeps, short injected blocks): their assertions must hold with `lanes` of them side by side.
 */
export function ahead<T>(lanes: number, scenarios: Record<string, () => Promise<T>>): (name: string) => Promise<T> {
  let started: Map<string, Promise<T>> | undefined;
  const start = () => {
    const run = limit(lanes);
    return new Map(
      Object.entries(scenarios).map(([name, scenario]) => {
        const result = run(scenario);
        // Awaited by its test; until then a rejection is not an unhandled one.
        result.catch(() => {});
        return [name, result] as const;
      }),
    );
  };
  return (name) => {
    started ??= start();
    const result = started.get(name);
    if (!result) throw new Error(`no scenario named ${name}`);
    return result;
  };
}
