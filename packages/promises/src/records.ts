import type { CapturedStack } from './stack.js';

// Entry.state bits.
export const SETTLED = 1;
export const ENDED = 2; // its request ended
export const DONE = 4; // decided: nothing more to report (or no longer tracked)
export const DETACHED = 8; // detach(): intended fire-and-forget
export const UNHANDLED = 16; // reported as unhandled, so not as floating too

/** A promise created in a scope (not by then/catch/finally or an await): the unit that is reported. */
export class Entry<S> {
  children = 0;
  state = 0;
  endedAt = 0;
  bucket: Bucket<S> | undefined = undefined;
  direct: Link<S> | undefined = undefined;
  indirect: Link<S> | undefined = undefined;
  constructor(
    readonly scope: S,
    readonly createdAt: number,
    readonly holder: CapturedStack,
  ) {}
}

/**
 * What a promise derived from a tracked one maps to. `direct`: its parent is the entry itself, so
 * it counts as an observation of the entry, unless it settles while the entry is still pending: a
 * real reaction (then, await, a combinator, adoption) can only settle after its parent did, while
 * the wrapper V8 makes for `await nonPromise` inside an async function names that function's own
 * promise as parent and settles at once. One Link per entry and kind is shared by all its children.
 */
export class Link<S> {
  constructor(
    readonly root: Entry<S>,
    readonly direct: boolean,
  ) {}
}

/** The entries of one scope, found again when the scope ends. */
export class Bucket<S> {
  entries: Entry<S>[] = [];
  live = 0;
  constructor(readonly createdAt: number) {}
  add(entry: Entry<S>): void {
    entry.bucket = this;
    this.live++;
    // A long job retires most of its entries long before it ends: drop them now and then.
    if (this.entries.length >= 64 && this.entries.length >= 4 * this.live)
      this.entries = this.entries.filter((e) => (e.state & DONE) === 0);
    this.entries.push(entry);
  }
}
