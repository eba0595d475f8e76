import type { CaptureStep, Problem } from '../protocol.js';
import { within } from './clock.js';
import type { Faults } from './faults.js';
import { type Inspector, type Paused, type Session, type Target, TargetBase } from './target.js';

export interface MainTargetOptions {
  /** `debuggerMode: 'always'`: the session stays connected and enabled between captures. */
  keepSession: boolean;
  commandTimeoutMs: number;
  now: () => number;
  /** A pause we did not ask for: a debugger is attached. */
  onForeign: () => void;
  onError: (problem: Problem, error: unknown) => void;
}

/**
 * The main thread's debugger, through a session the watchdog thread opens with
 * connectToMainThread(). A session stays connected only while it is needed: a process that exits
 * with one connected prints "Waiting for the debugger to disconnect...". `keepSession` keeps it;
 * otherwise it lives for one capture.
 */
export class MainTarget extends TargetBase implements Target {
  readonly #inspector: Inspector;
  readonly #faults: Faults;
  readonly #o: MainTargetOptions;
  #session: Session | undefined;
  /** A session whose disconnect failed, retried at the next capture. */
  #stale: Session | undefined;
  #debuggerOn = false;
  /** Our Debugger.pause was answered and its pause has not been seen yet. */
  #pauseAsked = false;

  constructor(inspector: Inspector, faults: Faults, options: MainTargetOptions) {
    super();
    this.#inspector = inspector;
    this.#faults = faults;
    this.#o = options;
  }

  /** Whether a session is connected or waits to be closed: an exit must wait for this thread. */
  holdsSession(): boolean {
    return this.#session !== undefined || this.#stale !== undefined;
  }

  async open(): Promise<boolean> {
    this.#retryStale();
    this.#connect();
    return true;
  }

  /** `debuggerMode: 'always'`: connected and enabled from the start. */
  async openEnabled(): Promise<void> {
    this.#connect();
    await within(this.#enable(), this.#o.commandTimeoutMs, 'Debugger.enable');
  }

  command(method: string, params: object = {}, step?: CaptureStep, onAnswer?: () => void): Promise<Record<string, unknown>> {
    const fault = step && this.#faults.at(step);
    if (fault === 'fail') return Promise.reject(new Error(`${method} failed (injected)`));
    if (fault === 'hang') return new Promise(() => {});
    const to = this.#session;
    if (!to) return Promise.reject(new Error(`${method}: no inspector session`));
    return new Promise((resolve, reject) => {
      to.post(method, params, (error, result) => {
        if (error) return reject(error);
        onAnswer?.();
        resolve(result);
      });
    });
  }

  probe(): (landedAt: number) => number {
    const asked = this.#o.now();
    let reachedAt: number | undefined;
    this.command('Runtime.getIsolateId', {}, 'probe').then(
      () => {
        reachedAt = this.#o.now();
      },
      () => {},
    );
    return (landedAt) => (reachedAt ?? landedAt) - asked;
  }

  askPause(): Promise<void> {
    // Pipelined: the pause is dispatched right behind the enable, in the same interrupt.
    return Promise.all([
      this.#enable(),
      this.command('Debugger.pause', {}, 'pause', () => {
        this.#pauseAsked = true;
      }),
    ]).then(() => {});
  }

  gone(): boolean {
    return false;
  }

  /**
   * Resumes the thread if we paused it, and closes the session if resuming failed, the capture was
   * cut short, or sessions last one capture.
   */
  async release(paused: boolean): Promise<void> {
    const resumed = paused && (await this.#resume());
    if (resumed && this.#o.keepSession) return;
    if (this.drop() || !paused || resumed) return;
    // Neither worked: ending this thread closes its session, which resumes the main thread; the
    // main thread then times stalls on its own.
    process.exit(1);
  }

  /** Closes the session; V8 resumes a thread whose pausing session goes away. False if that failed. */
  drop(): boolean {
    const closing = this.#session;
    this.#session = undefined;
    this.#debuggerOn = false;
    this.#pauseAsked = false;
    this.forgetScripts();
    if (!closing) return true;
    try {
      const fault = this.#faults.at('disconnect');
      if (fault === 'fail') throw new Error('disconnect failed (injected)');
      if (fault === 'hang') {
        const end = this.#o.now() + 1000;
        while (this.#o.now() < end);
      }
      closing.disconnect();
      return true;
    } catch (error) {
      this.#stale = closing;
      this.#o.onError('session-close', error);
      return false;
    }
  }

  /** The process exits: nothing of ours may stay connected. */
  letGo(): void {
    this.drop();
    this.#retryStale();
  }

  #retryStale(): void {
    const closing = this.#stale;
    this.#stale = undefined;
    try {
      closing?.disconnect();
    } catch (error) {
      this.#stale = closing;
      this.#o.onError('session-close', error);
    }
  }

  #connect(): void {
    if (this.#session) return;
    const opened = new this.#inspector.Session();
    opened.connectToMainThread();
    this.#session = opened;
    opened.on('Debugger.scriptParsed', (m: { params: { scriptId: string; url: string; sourceMapURL?: string } }) => this.parsed(m.params));
    opened.on('Debugger.paused', (m: { params: Paused }) => this.#onPaused(m.params));
  }

  #onPaused(params: Paused): void {
    // Ours only if it comes after the answer to our Debugger.pause and hit no breakpoint. A thread
    // already stopped by a debugger reports that pause while our Debugger.enable is handled, before
    // that answer. A pause we did not cause is never resumed.
    const ours = this.#pauseAsked && params.reason === 'other' && !params.hitBreakpoints?.length;
    if (!ours) {
      this.#o.onForeign();
      this.land('foreign');
      return;
    }
    this.#pauseAsked = false;
    // Our pause, landing after its capture gave up: closing the session lets it go.
    if (!this.land({ frames: params.callFrames, at: this.#o.now() })) this.drop();
  }

  #enable(): Promise<void> {
    if (this.#debuggerOn) return Promise.resolve();
    this.#debuggerOn = true;
    // `debugger;` statements in the app must not stop it while our session is attached.
    return Promise.all([
      this.command('Debugger.enable', {}, 'enable'),
      this.command('Debugger.setBreakpointsActive', { active: false }),
    ]).then(() => {});
  }

  async #resume(): Promise<boolean> {
    try {
      await within(this.command('Debugger.resume', {}, 'resume'), this.#o.commandTimeoutMs, 'Debugger.resume');
      return true;
    } catch (error) {
      this.#o.onError('resume', error);
      return false;
    }
  }
}
