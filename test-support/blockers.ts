// Named blockers for stall tests: the stall report must name these functions and this file.

/** Busy-waits `ms` milliseconds in JavaScript, where V8 can pause it at once. */
export function blockTheLoop(ms: number): number {
  const end = performance.now() + ms;
  let spins = 0;
  while (performance.now() < end) spins++;
  return spins;
}

let huge: string | undefined;

/** A JSON text of about `mb` MB that takes a few hundred ms to parse. Built once, cached. */
export function hugeJson(mb = 20): string {
  if (huge && huge.length >= mb * 1e6) return huge;
  const item = JSON.stringify({ id: 123456, name: 'item name', tags: ['a', 'b', 'c'], nested: { x: 1.5, y: [1, 2, 3] } });
  huge = `[${new Array(Math.ceil((mb * 1e6) / (item.length + 1))).fill(item).join(',')}]`;
  return huge;
}

/** Parses a huge JSON text: the time is spent inside V8's JSON.parse, which a pause cannot interrupt. */
export function parseHugeJson(text: string): number {
  const parsed = JSON.parse(text) as unknown[];
  return parsed.length;
}
