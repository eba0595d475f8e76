import type { CaptureStep, Fault } from '../protocol.js';

/** The faults a test injected, used up as captures reach their steps. */
export class Faults {
  readonly #left: (Fault & { left: number })[];

  constructor(faults: readonly Fault[]) {
    this.#left = faults.map((fault) => ({ ...fault, left: fault.times ?? 1 }));
  }

  /** The fault injected at this step, if one is left; `kill` ends the watchdog thread here. */
  at(step: CaptureStep): Fault['kind'] | undefined {
    const fault = this.#left.find((f) => f.step === step && f.left > 0);
    if (!fault) return undefined;
    fault.left--;
    if (fault.kind === 'kill') process.exit(1);
    return fault.kind;
  }
}
