// A worker's loop is paused through the main thread's inspector: a session opened with
// connectToMainThread() sees every worker of the process, nested ones included, in the
// `NodeWorker` domain (measured on Node 20 and 24), and relays Debugger commands to it. From a
// worker, connectToMainThread() reaches the main thread, never the worker's own parent, which is
// why a worker cannot run a watchdog of its own that pauses it.

import type { CaptureStep, Problem } from '../protocol.js';
import { within } from './clock.js';
import type { Faults } from './faults.js';
import { type Inspector, type Paused, type Session, type Target, TargetBase } from './target.js';

export interface WorkerTargetOptions {
  commandTimeoutMs: number;
  now: () => number;
  nap: (ms: number) => Promise<void>;
  /** Whether the thread is still watched: a capture of one that went away gives up. */
  watched: () => boolean;
  /** The watchdog stops: a pause of ours is not resumed, only detached from. */
  released: () => boolean;
  onError: (problem: Problem, error: unknown) => void;
  /** The capture is over and its session closed. */
  onClosed: () => void;
}

type Relayed = { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: never };

/** One worker's debugger, for one capture: a session of its own, closed by release(). */
export class WorkerTarget extends TargetBase implements Target {
  readonly #threadId: number;
  readonly #inspector: Inspector;
  readonly #faults: Faults;
  readonly #o: WorkerTargetOptions;
  #session: Session | undefined;
  readonly #targets = new Map<number, string>();
  readonly #pending = new Map<number, (message: Relayed) => void>();
  #target: string | undefined;
  #nextId = 1;
  /** The worker ended (worker.terminate(), process.exit() in it) while we waited: a pause never lands. */
  #ended = false;
  #pauseSent = false;
  #detached: Promise<unknown> | undefined;

  constructor(threadId: number, inspector: Inspector, faults: Faults, options: WorkerTargetOptions) {
    super();
    this.#threadId = threadId;
    this.#inspector = inspector;
    this.#faults = faults;
    this.#o = options;
  }

  async open(): Promise<boolean> {
    const session = new this.#inspector.Session();
    session.connectToMainThread();
    this.#session = session;
    session.on('NodeWorker.attachedToWorker', ({ params }: { params: { sessionId: string; workerInfo: { title: string } } }) => {
      // The title is "[worker <threadId>] <name>".
      const id = /^\[worker (\d+)\]/.exec(params.workerInfo.title)?.[1];
      if (id !== undefined) this.#targets.set(Number(id), params.sessionId);
    });
    session.on('NodeWorker.detachedFromWorker', ({ params }: { params: { sessionId: string } }) => {
      if (this.#target !== undefined && params.sessionId === this.#target) this.#ended = true;
    });
    session.on('NodeWorker.receivedMessageFromWorker', ({ params }: { params: { sessionId: string; message: string } }) => {
      if (params.sessionId === this.#target) this.#onRelayed(JSON.parse(params.message) as Relayed);
    });
    await within(this.#post('NodeWorker.enable', { waitForDebuggerOnStart: false }), this.#o.commandTimeoutMs, 'NodeWorker.enable');
    // The attachments are announced before enable's answer; one more turn in case they are not.
    if (!this.#targets.has(this.#threadId)) await this.#o.nap(1);
    this.#target = this.#targets.get(this.#threadId);
    return this.#target !== undefined;
  }

  command(method: string, params: object = {}, step?: CaptureStep): Promise<Record<string, unknown>> {
    const fault = step && this.#faults.at(step);
    if (fault === 'fail') return Promise.reject(new Error(`${method} failed (injected)`));
    if (fault === 'hang') return new Promise(() => {});
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, (m) =>
        m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve((m.result ?? {}) as Record<string, unknown>),
      );
      this.#post('NodeWorker.sendMessageToWorker', { sessionId: this.#target, message: JSON.stringify({ id, method, params }) }).catch(
        reject,
      );
    });
  }

  /**
   * Two answers tell whether the pause was late: the main thread's, given just before it forwards
   * our first command to the worker, and the worker's, given when it took that command at its first
   * interrupt. Both come back the same way, so the main thread's relay counts little. (Debugger.enable
   * answers only after every scriptParsed event was relayed, about 90 ms, so it cannot tell.)
   * Without both readings (an answer lost), the pause counts as late: its scope is then not trusted.
   */
  probe(): (landedAt: number) => number {
    let forwardedAt: number | undefined;
    let reachedAt: number | undefined;
    this.#post('Runtime.getIsolateId').then(
      () => {
        forwardedAt = this.#o.now();
      },
      () => {},
    );
    this.command('Runtime.getIsolateId', {}, 'probe').then(
      () => {
        reachedAt = this.#o.now();
      },
      () => {},
    );
    return () => (forwardedAt !== undefined && reachedAt !== undefined ? Math.max(0, reachedAt - forwardedAt) : Number.POSITIVE_INFINITY);
  }

  askPause(): Promise<void> {
    // Pipelined: Debugger.enable answers only after every scriptParsed event was relayed, and the
    // pause lands behind it either way.
    this.#pauseSent = true;
    return Promise.all([
      this.command('Debugger.enable', {}, 'enable'),
      this.command('Debugger.setBreakpointsActive', { active: false }),
      this.command('Debugger.pause', {}, 'pause'),
    ]).then(() => {});
  }

  gone(): boolean {
    return this.#ended || !this.#o.watched();
  }

  /** Lets the worker go at once: the watchdog stops, and a worker paused through a session that goes away stays paused. */
  detach(): Promise<unknown> {
    this.#detached ??= within(this.#post('NodeWorker.detach', { sessionId: this.#target }), this.#o.commandTimeoutMs, 'NodeWorker.detach');
    return this.#detached;
  }

  async release(paused: boolean): Promise<void> {
    try {
      if (paused && !this.#o.released()) {
        // Cut short by a detach (the watchdog stops) as well.
        await Promise.race([
          within(this.command('Debugger.resume', {}, 'resume'), this.#o.commandTimeoutMs, 'Debugger.resume'),
          this.#detached ?? new Promise(() => {}),
        ]).catch(() => {});
      }
      // Closing the main thread's session does NOT resume a worker paused through it (measured on
      // Node 20 and 24): detaching from the worker does, whenever our pause lands. Tried even when
      // the worker ended: should a pause of ours still land in its teardown, only a detach could
      // release it. Its failure then tells nobody anything.
      if (this.#pauseSent) {
        await this.detach().catch((error) => {
          if (!this.#ended) this.#o.onError('detach', error);
        });
      }
    } finally {
      try {
        this.#session?.disconnect();
      } catch {
        // Already gone with its worker.
      }
      this.#session = undefined;
      this.#o.onClosed();
    }
  }

  #post(method: string, params: object = {}): Promise<unknown> {
    const session = this.#session;
    if (!session) return Promise.reject(new Error(`${method}: no inspector session`));
    return new Promise((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));
  }

  #onRelayed(message: Relayed): void {
    if (typeof message.id === 'number') {
      this.#pending.get(message.id)?.(message);
      this.#pending.delete(message.id);
      return;
    }
    if (message.method === 'Debugger.scriptParsed') {
      this.parsed(message.params as unknown as { scriptId: string; url?: string; sourceMapURL?: string });
    } else if (message.method === 'Debugger.paused') {
      const params = message.params as unknown as Paused;
      // Ours once our Debugger.pause was sent (a relayed worker may report the pause before the
      // answer), and never a breakpoint's. A pause we did not cause is never resumed.
      const ours = this.#pauseSent && params.reason === 'other' && !params.hitBreakpoints?.length;
      this.land(ours ? { frames: params.callFrames, at: this.#o.now() } : 'foreign');
    }
  }
}
