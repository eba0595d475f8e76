// Contract used by @loopsight/core (the tracker is a leaf: it never imports another loopsight package).
// To be implemented: see issue 5.

export interface TrackerStackFrame {
  functionName: string;
  url: string;
  line: number;
  column: number;
}

export interface TrackedPromiseReport<S> {
  type: 'promise';
  kind: 'floating' | 'leaked' | 'unhandled';
  stack: TrackerStackFrame[];
  request?: S;
  ageMs: number;
}

export interface PromiseTrackerOptions<S extends object> {
  mode: 'sampled' | 'full';
  leakAfterMs: number;
  /** The request scope that is current now (core passes its AsyncLocalStorage getter). */
  getScope: () => S | undefined;
  onReport: (report: TrackedPromiseReport<S>) => void;
  /** A contained failure inside the tracker: core counts it and warns once. */
  onError: (what: string, error: unknown) => void;
}

export interface PromiseTracker<S extends object> {
  start(): void;
  stop(): void;
  /** Core calls this when a request scope ends (response closed, job settled). */
  scopeEnded(scope: S): void;
}

export function createPromiseTracker<S extends object>(_options: PromiseTrackerOptions<S>): PromiseTracker<S> {
  return { start() {}, stop() {}, scopeEnded() {} };
}
