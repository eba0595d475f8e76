import type { RequestScope } from './types.js';

/** What `begin()` returns for a scope that was not registered (the registry was full). */
export const NO_SLOT = -1;

/**
 * The scopes in flight, each in a numbered slot: registering and removing one is two array stores
 * and a free-list push or pop. A Set hashed every new scope object, which cost 40–90 ns a request
 * (micro/request-path.mjs); every request pays for this, while only a report reads it.
 * Holds at most `max` scopes; its arrays grow to the highest concurrency seen, never past `max`.
 */
export class InflightRegistry implements Iterable<RequestScope> {
  readonly #max: number;
  readonly #slots: (RequestScope | undefined)[] = [];
  readonly #free: number[] = [];
  #size = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#size;
  }

  /** Registers `scope`; its slot, to hand back to `delete`, or NO_SLOT when `max` are in flight. */
  add(scope: RequestScope): number {
    if (this.#size >= this.#max) return NO_SLOT;
    const slot = this.#free.length > 0 ? (this.#free.pop() as number) : this.#slots.length;
    this.#slots[slot] = scope;
    this.#size++;
    return slot;
  }

  /** Removes `scope` from `slot`; nothing when it is not there (NO_SLOT, or removed already). */
  delete(slot: number, scope: RequestScope): void {
    if (slot < 0 || this.#slots[slot] !== scope) return;
    this.#slots[slot] = undefined;
    this.#free.push(slot);
    this.#size--;
  }

  *[Symbol.iterator](): Iterator<RequestScope> {
    for (const scope of this.#slots) if (scope !== undefined) yield scope;
  }

  /** The scopes in flight, oldest first (slots are reused, so their order is not the scopes'). */
  list(): RequestScope[] {
    return [...this].sort((a, b) => a.startedAt - b.startedAt);
  }
}
