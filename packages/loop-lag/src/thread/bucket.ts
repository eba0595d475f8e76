/** Stack captures allowed per minute, refilled continuously: stalls beyond it are still counted and timed. */
export class TokenBucket {
  readonly #perMinute: number;
  readonly #now: () => number;
  #tokens: number;
  #refilledAt: number;

  constructor(perMinute: number, now: () => number) {
    this.#perMinute = perMinute;
    this.#now = now;
    this.#tokens = perMinute;
    this.#refilledAt = now();
  }

  take(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#perMinute, this.#tokens + ((now - this.#refilledAt) * this.#perMinute) / 60_000);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
