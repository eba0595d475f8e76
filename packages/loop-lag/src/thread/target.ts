import { createRequire } from 'node:module';
import type { CaptureStep } from '../protocol.js';

interface Location {
  scriptId: string;
  lineNumber: number;
  columnNumber?: number;
}

export interface CallFrame {
  functionName: string;
  url?: string;
  location: Location;
  functionLocation?: Location;
}

export interface Paused {
  callFrames: CallFrame[];
  reason: string;
  hitBreakpoints?: string[];
}

/** A pause that landed: ours, read at `at` (monotonic ms). */
export interface Landed {
  frames: CallFrame[];
  at: number;
}

/** The inspector's Session, as the watchdog thread uses it. */
export interface Session {
  connectToMainThread(): void;
  disconnect(): void;
  post(method: string, params: object, callback: (error: Error | null, result: Record<string, unknown>) => void): void;
  on(event: string, listener: (message: { params: never }) => void): void;
}

export type Inspector = { Session: new () => Session };

/** node:inspector, or why not: a Node built without it throws on import, and must still run. */
export function loadInspector(): Inspector | Error {
  try {
    // Builtins resolve from anywhere: no module URL needed (a CommonJS build has no import.meta).
    return createRequire(`${process.cwd()}/`)('node:inspector') as Inspector;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/**
 * The debugger of one watched thread, as a capture drives it: the main thread's through a session
 * of its own (main-target.ts), a worker's relayed by the main thread's `NodeWorker` domain
 * (worker-target.ts). Everything else about a capture is the same for both (capture.ts).
 */
export interface Target {
  /** Connects, or keeps the connection it has; false when the thread is no longer there. */
  open(): Promise<boolean>;
  /** A command to the thread's debugger; `step` is where a test may inject a fault. */
  command(method: string, params?: object, step?: CaptureStep): Promise<Record<string, unknown>>;
  /**
   * Sends a command that runs no JavaScript and is answered at the thread's next interrupt check,
   * then returns how long the thread took to take it, given when the pause landed. Long means
   * native code held the thread, and the pause landed after the blocking call returned.
   */
  probe(): (landedAt: number) => number;
  /** Enables the debugger (once per connection), `debugger;` statements off, and asks for a pause, pipelined. */
  askPause(): Promise<void>;
  /** The next pause: ours once `askPause` was answered, else `foreign` (a debugger's, never resumed by us). */
  nextPause(): Promise<Landed | 'foreign'>;
  /** The capture is over: a pause of ours that lands from now on is let go at once. */
  endWait(): void;
  /** The URL and the sourceMappingURL of a script, as V8 announced it. */
  script(scriptId: string): { url: string | undefined; map: string | undefined };
  /** The thread exited or is no longer watched: a pause will never land. */
  gone(): boolean;
  /** Lets the thread go after a capture: resumes it if `paused`, and closes what this capture opened. */
  release(paused: boolean): Promise<void>;
}

/** What both targets keep alike: the scripts V8 announced, and the capture waiting for its pause. */
export abstract class TargetBase {
  readonly #scripts = new Map<string, string>();
  readonly #maps = new Map<string, string>();
  #waiting: ((landed: Landed | 'foreign') => void) | undefined;

  nextPause(): Promise<Landed | 'foreign'> {
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  endWait(): void {
    this.#waiting = undefined;
  }

  script(scriptId: string): { url: string | undefined; map: string | undefined } {
    return { url: this.#scripts.get(scriptId), map: this.#maps.get(scriptId) };
  }

  /** A `Debugger.scriptParsed`: frames name their script by id only. */
  protected parsed(params: { scriptId: string; url?: string; sourceMapURL?: string }): void {
    if (params.url) this.#scripts.set(params.scriptId, params.url);
    if (params.sourceMapURL) this.#maps.set(params.scriptId, params.sourceMapURL);
  }

  protected forgetScripts(): void {
    this.#scripts.clear();
    this.#maps.clear();
  }

  /** Hands a pause to the capture waiting for it; false when none waits. */
  protected land(landed: Landed | 'foreign'): boolean {
    const capture = this.#waiting;
    this.#waiting = undefined;
    capture?.(landed);
    return capture !== undefined;
  }
}
