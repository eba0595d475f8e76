// The scope readers a paused thread's evaluation calls: one registry per isolate, shared by every
// copy of this package (ESM and CJS builds, two installs), so a key names one watchdog.

const REGISTRY = Symbol.for('loopsight.loop-lag.scopes.v1');
const NEXT_KEY = Symbol.for('loopsight.loop-lag.next-key.v1');

type ScopeReader = () => string | undefined;

export function scopeReaders(): Record<string, ScopeReader> {
  const g = globalThis as unknown as Record<symbol, Record<string, ScopeReader> | undefined>;
  g[REGISTRY] ??= Object.create(null) as Record<string, ScopeReader>;
  return g[REGISTRY];
}

/** A key unique in the isolate, for one watchdog's reader. */
export function readerKey(): string {
  const g = globalThis as unknown as Record<symbol, number | undefined>;
  const id = g[NEXT_KEY] ?? 0;
  g[NEXT_KEY] = id + 1;
  return `w${id}`;
}

/** The expression the watchdog thread evaluates on the paused thread: JSON of its scope, or undefined. */
export function scopeExpression(key: string): string {
  return `globalThis[Symbol.for(${JSON.stringify(REGISTRY.description)})]?.[${JSON.stringify(key)}]?.()`;
}
