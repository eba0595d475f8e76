// Contract used by @loopsight/core (a leaf: it never imports another loopsight package).

export interface WatchdogStackFrame {
  functionName: string;
  url: string;
  line: number;
  column: number;
}

export interface WatchdogStallReport<S> {
  type: 'stall';
  durationMs: number;
  at: number;
  stack: WatchdogStackFrame[];
  stackSource: 'pause' | 'late-pause' | 'profile' | 'none';
  request?: S;
  inflight: number;
}

export interface StallWatchdogOptions<S extends object> {
  thresholdMs: number;
  captureStacks: boolean;
  getScope: () => S | undefined;
  inflight: () => number;
  onStall: (report: WatchdogStallReport<S>) => void;
  onError: (what: string, error: unknown) => void;
}

export interface StallWatchdog {
  start(): void;
  stop(): Promise<void>;
}

export function createStallWatchdog<S extends object>(_options: StallWatchdogOptions<S>): StallWatchdog {
  return { start() {}, async stop() {} };
}
