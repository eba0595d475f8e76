import { AsyncLocalStorage } from 'node:async_hooks';
import type { RequestScope } from './types.js';

interface Shared {
  readonly store: AsyncLocalStorage<RequestScope>;
}

// The ESM and CJS builds, or two copies of @loopsight/core in node_modules, must see one context:
// a scope opened by one copy has to be visible to getCorrelationId() imported through the other.
const KEY = Symbol.for('loopsight.core.shared.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: Shared };
holder[KEY] ??= Object.freeze({ store: new AsyncLocalStorage<RequestScope>() });
const shared: Shared = holder[KEY];

/** The AsyncLocalStorage that holds the scope; one per process. */
export const scopeStore: AsyncLocalStorage<RequestScope> = shared.store;

/**
 * The scope of the request or job that is running, or `undefined` outside any (a timer started at
 * boot, a module's top level). Never throws.
 *
 * @example
 * const scope = currentScope();
 * log.info({ id: scope?.correlationId }, 'charging card');
 */
export function currentScope(): RequestScope | undefined {
  return scopeStore.getStore();
}

/**
 * Runs `fn` inside `scope` without in-flight tracking or a 'request' event: the low-level primitive
 * under `monitor.run()` and `withCorrelationId()`.
 */
export function runInScope<T>(scope: RequestScope, fn: () => T): T {
  return scopeStore.run(scope, fn);
}
