import { createRequire } from 'node:module';
import type { WatchdogStackFrame } from './types.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/**
 * The stack that the sampling profiler saw most inside [fromUs, toUs] (V8's monotonic clock, µs,
 * which is process.hrtime's), and the share of samples spent in GC. V8 records the JS caller even
 * while a native builtin such as JSON.parse runs, which a pause cannot see.
 */
export function dominantStack(
  profile: Profile,
  fromUs: number,
  toUs: number,
  maxFrames: number,
): { stack: WatchdogStackFrame[]; gcShare: number } | undefined {
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const counts = new Map<number, number>();
  let t = profile.startTime;
  let inWindow = 0;
  let gc = 0;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const id = samples[i] as number;
    const name = byId.get(id)?.callFrame.functionName;
    if (name === '(idle)') continue;
    inWindow++;
    if (name === '(garbage collector)') {
      gc++;
      continue;
    }
    if (name === '(program)' || name === '(root)') continue;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  if (inWindow === 0) return undefined;
  let best: number | undefined;
  let bestCount = 0;
  for (const [id, count] of counts) {
    if (count > bestCount) {
      best = id;
      bestCount = count;
    }
  }
  const stack: WatchdogStackFrame[] = [];
  for (let id = best; id !== undefined && stack.length < maxFrames; id = parent.get(id)) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || frame.functionName === '(root)') break;
    stack.push({ functionName: frame.functionName, url: frame.url, line: frame.lineNumber + 1, column: frame.columnNumber + 1 });
  }
  return { stack, gcShare: gc / inWindow };
}

/** How often the watchdog's profile is taken and restarted, ms, so that its buffer stays small. */
export const RESTART_MS = 30_000;

/**
 * The main thread's sampling profiler, on a session of its own (same thread): its calls are
 * synchronous, and `close()` on process exit leaves no session behind. V8 samples on its own
 * thread (SIGPROF); the main thread pays only when a profile is taken, after a stall and every
 * `restartMs`.
 */
export class MainThreadProfiler {
  // biome-ignore lint/suspicious/noExplicitAny: an inspector Session.
  #session: any;
  #timer: NodeJS.Timeout | undefined;
  readonly #onError: (error: unknown) => void;

  constructor(intervalMs: number, restartMs: number, onError: (error: unknown) => void) {
    this.#onError = onError;
    const inspector = createRequire(`${process.cwd()}/`)('node:inspector') as typeof import('node:inspector');
    this.#session = new inspector.Session();
    this.#session.connect();
    this.#post('Profiler.enable');
    this.#post('Profiler.setSamplingInterval', { interval: intervalMs * 1000 });
    this.#post('Profiler.start');
    this.#timer = setInterval(() => this.#restart(), restartMs).unref();
  }

  // From a timer: a failure here would be an uncaught exception in the app.
  #restart(): void {
    try {
      this.take();
    } catch (error) {
      this.#onError(error);
    }
  }

  /** Stops the running profile, starts the next one, and returns the stopped one. */
  take(): Profile | undefined {
    if (!this.#session) return undefined;
    const result = this.#post('Profiler.stop') as { profile?: Profile } | undefined;
    this.#post('Profiler.start');
    return result?.profile;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const session = this.#session;
    this.#session = undefined;
    try {
      session?.post('Profiler.stop');
    } finally {
      session?.disconnect();
    }
  }

  #post(method: string, params?: object): unknown {
    let out: unknown;
    let failure: Error | null = null;
    // Synchronous on a same-thread session: the callback has run when post() returns.
    this.#session.post(method, params ?? {}, (error: Error | null, result: unknown) => {
      failure = error;
      out = result;
    });
    if (failure) throw failure;
    return out;
  }
}
