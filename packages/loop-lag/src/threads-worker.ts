// The part of the process's watchdog thread that watches worker threads. Sent to that thread as
// source text next to workerMain (see worker.ts), so the same rules hold: self-contained, no
// imports, only `require` of node builtins inside the body.
//
// A worker's loop is paused through the main thread's inspector: a session opened with
// connectToMainThread() sees every worker of the process, nested ones included, in the
// `NodeWorker` domain (measured on Node 20 and 24), and relays Debugger commands to it. From a
// worker, connectToMainThread() reaches the main thread, never the worker's own parent, which is
// why a worker cannot run a watchdog of its own that pauses it.

import type { MessagePort } from 'node:worker_threads';
import type { StackSkipped, WatchdogStackFrame } from './types.js';
import type { WorkerConfig, WorkerMessage } from './worker.js';

/** The BroadcastChannel the watched threads and the watchdog thread talk on. */
export const THREADS_CHANNEL = 'loopsight:loop-lag:threads:v1';

/** What a worker thread asks of the watchdog thread (see threads.ts). */
export interface WatchRequest {
  type: 'watch';
  threadId: number;
  /** Slots as in worker.ts's BEAT_*: the worker writes its heartbeat, the watchdog thread reads it. */
  heartbeat: SharedArrayBuffer;
  thresholdMs: number;
  heartbeatMs: number;
  captureStacks: boolean;
  maxStacksPerMinute: number;
  latePauseMs: number;
  /** Evaluated on the paused worker; returns JSON of { request, inflight, candidates }. */
  scopeExpression: string;
  maxFrames: number;
}

/** Messages on THREADS_CHANNEL. `to` is the thread id a message is for: every thread hears every message. */
export type ThreadsMessage =
  | { type: 'hello' }
  /** The watchdog thread stops: workers time their stalls themselves until the next says hello. */
  | { type: 'bye' }
  | WatchRequest
  | { type: 'unwatch'; threadId: number }
  | { type: 'watching'; to: number; stacks: boolean }
  | { type: 'error'; to: number; what: string; message: string }
  | (Omit<Extract<WorkerMessage, { type: 'stall' }>, 'window' | 'wantsProfile'> & {
      to: number;
      /** The heartbeat sequence number the stall began after: the worker matches it with its own timing. */
      seq: number;
    });

interface Watched {
  readonly request: WatchRequest;
  readonly beat: Int32Array;
  handling: boolean;
  tokens: number;
  refilledAt: number;
}

interface Frame {
  functionName: string;
  url?: string;
  location: { scriptId: string; lineNumber: number; columnNumber?: number };
}

/** Runs in the watchdog thread, beside workerMain. `mainBeat` is the main thread's heartbeat buffer. */
function threadsMain(
  {
    heartbeat: mainBeat,
    commandTimeoutMs,
    port: control,
    faults,
  }: Pick<WorkerConfig, 'heartbeat' | 'commandTimeoutMs' | 'port' | 'faults'>,
  load: NodeJS.Require,
): void {
  // Slots as in worker.ts's BEAT_*.
  const MS = 0;
  const SEQ = 1;
  const DEBUGGER = 2;
  const GAP = 5;
  // Most threads watched at once; a thread past it times its stalls itself (docs/loop-lag.md).
  const MAX_WATCHED = 64;
  const CHANNEL = 'loopsight:loop-lag:threads:v1';
  const RELEASE = 'release-threads';
  const RELEASED = 'threads-released';
  const { BroadcastChannel } = load('node:worker_threads') as typeof import('node:worker_threads');
  // biome-ignore lint/suspicious/noExplicitAny: node:inspector, when the build has it.
  let inspector: any;
  try {
    inspector = load('node:inspector');
  } catch {
    inspector = undefined;
  }
  const main = new Int32Array(mainBeat);
  const watched = new Map<number, Watched>();
  const channel = new BroadcastChannel(CHANNEL);
  // Never what keeps this thread alive: workerMain's port is.
  channel.unref();
  const send = (message: ThreadsMessage) => channel.postMessage(message);
  const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
  const nap = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
  const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
  const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      timer.unref();
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  };

  // The captures under way, each with what lets its worker go at once: when the watchdog stops
  // (releaseThreads), before this thread is terminated, because a worker paused through a session
  // that goes away stays paused.
  const letGo = new Set<() => Promise<unknown>>();
  let released = false;
  // Test seam, as workerMain's faults: a resume that never answers keeps the worker paused.
  const resumeHangs = faults.some((f) => f.step === 'resume' && f.kind === 'hang');

  const takeToken = (w: Watched) => {
    const max = w.request.maxStacksPerMinute;
    const now = nowMs();
    w.tokens = Math.min(max, w.tokens + ((now - w.refilledAt) * max) / 60_000);
    w.refilledAt = now;
    if (w.tokens < 1) return false;
    w.tokens -= 1;
    return true;
  };

  /**
   * Pauses the worker through the main thread's NodeWorker domain, reads its stack and scope, and
   * resumes it. 'gone' when the worker is no longer in the process; 'foreign' when the pause that
   * came was not ours (a debugger is attached): that one is never resumed.
   */
  const capture = async (w: Watched, seq: number) => {
    const { threadId, scopeExpression, maxFrames } = w.request;
    const session = new inspector.Session();
    session.connectToMainThread();
    const targets = new Map<number, string>();
    const pending = new Map<number, (message: { result?: unknown; error?: { message: string } }) => void>();
    const scripts = new Map<string, string>();
    let target: string | undefined;
    // The worker ended (worker.terminate(), process.exit() in it) while we waited for the pause:
    // it never lands, and the worker does not beat again to time the wait out.
    let ended = false;
    let nextId = 1;
    let onPaused: ((params: { callFrames: Frame[]; reason: string; hitBreakpoints?: string[] }) => void) | undefined;
    let paused = false;
    let pauseAsked = false;
    let failed: unknown;
    let detached: Promise<unknown> | undefined;
    const detach = () => {
      detached ??= within(post('NodeWorker.detach', { sessionId: target }), commandTimeoutMs, 'NodeWorker.detach');
      return detached;
    };
    const post = (method: string, params: object = {}) =>
      new Promise<unknown>((resolve, reject) =>
        session.post(method, params, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))),
      );
    const ask = (method: string, params: object = {}) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, (m) =>
          m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve((m.result ?? {}) as Record<string, unknown>),
        );
        post('NodeWorker.sendMessageToWorker', { sessionId: target, message: JSON.stringify({ id, method, params }) }).catch(reject);
      });
    session.on('NodeWorker.attachedToWorker', ({ params }: { params: { sessionId: string; workerInfo: { title: string } } }) => {
      // The title is "[worker <threadId>] <name>".
      const id = /^\[worker (\d+)\]/.exec(params.workerInfo.title)?.[1];
      if (id !== undefined) targets.set(Number(id), params.sessionId);
    });
    session.on('NodeWorker.detachedFromWorker', ({ params }: { params: { sessionId: string } }) => {
      if (target !== undefined && params.sessionId === target) ended = true;
    });
    session.on('NodeWorker.receivedMessageFromWorker', ({ params }: { params: { sessionId: string; message: string } }) => {
      if (params.sessionId !== target) return;
      const message = JSON.parse(params.message);
      if (typeof message.id === 'number') {
        pending.get(message.id)?.(message);
        pending.delete(message.id);
      } else if (message.method === 'Debugger.scriptParsed' && message.params.url) {
        scripts.set(message.params.scriptId, message.params.url);
      } else if (message.method === 'Debugger.paused') {
        onPaused?.(message.params);
      }
    });
    try {
      await within(post('NodeWorker.enable', { waitForDebuggerOnStart: false }), commandTimeoutMs, 'NodeWorker.enable');
      // The attachments are announced before enable's answer; one more turn in case they are not.
      if (!targets.has(threadId)) await nap(1);
      target = targets.get(threadId);
      if (target === undefined) return 'gone' as const;
      const landing = new Promise<{ callFrames: Frame[]; reason: string; hitBreakpoints?: string[] }>((resolve) => {
        onPaused = resolve;
      });
      // Whether the pause was late is told by when two answers come: the main thread's, given just
      // before it forwards our first command to the worker, and the worker's, given when it took
      // that command at its first interrupt. Long between them means native code held the worker,
      // and the pause landed after the blocking call returned; both answers come back the same way,
      // so the main thread's relay counts little. (Debugger.enable answers only after every
      // scriptParsed event was relayed: about 90 ms, so it cannot tell.) Commands that run no
      // JavaScript: an evaluation on a running thread swallows a V8 termination that comes while
      // it runs (worker.terminate(), process.exit() in the worker, a vm timeout on the main thread).
      let forwardedAt: number | undefined;
      let reachedAt: number | undefined;
      post('Runtime.getIsolateId').then(
        () => {
          forwardedAt = nowMs();
        },
        () => {},
      );
      ask('Runtime.getIsolateId').then(
        () => {
          reachedAt = nowMs();
        },
        () => {},
      );
      // Pipelined, not awaited: Debugger.enable answers only after every scriptParsed event was
      // relayed, and the pause lands behind it either way. `debugger;` statements must not stop
      // the worker while our session is attached.
      pauseAsked = true;
      letGo.add(detach);
      for (const [method, params] of [
        ['Debugger.enable', {}],
        ['Debugger.setBreakpointsActive', { active: false }],
        ['Debugger.pause', {}],
      ] as const) {
        ask(method, params).catch((error) => {
          failed ??= error;
        });
      }
      // While the worker is blocked, the pause lands at its next interrupt check; once it runs
      // again, within commandTimeoutMs or not at all.
      let ranAt: number | undefined;
      let landed: { callFrames: Frame[]; reason: string; hitBreakpoints?: string[] } | undefined;
      landing.then((p) => {
        landed = p;
      });
      while (!landed) {
        if (failed) throw failed;
        const now = nowMs();
        if (ranAt === undefined && Atomics.load(w.beat, SEQ) !== seq) ranAt = now;
        if (ranAt !== undefined && now - ranAt > commandTimeoutMs) throw new Error('the worker did not pause');
        if (ended || watched.get(threadId) !== w) return 'gone' as const;
        await nap(2);
      }
      if (landed.reason !== 'other' || landed.hitBreakpoints?.length) return 'foreign' as const;
      paused = true;
      const stack = landed.callFrames.slice(0, maxFrames).map((f) => ({
        functionName: f.functionName,
        url: f.url || scripts.get(f.location.scriptId) || '',
        line: f.location.lineNumber + 1,
        column: (f.location.columnNumber ?? 0) + 1,
      }));
      let scope: string | undefined;
      try {
        // No `timeout`: V8 cancels a pending termination when an evaluation with one ends, which
        // left a worker.terminate() that came during the pause pending for good (see worker.ts).
        const params = { expression: scopeExpression, returnByValue: true, silent: true };
        const evaluated = (await within(ask('Runtime.evaluate', params), commandTimeoutMs, 'Runtime.evaluate')) as {
          result?: { value?: unknown };
        };
        if (typeof evaluated.result?.value === 'string') scope = evaluated.result.value;
      } catch (error) {
        send({ type: 'error', to: threadId, what: 'the request scope could not be read on the paused worker', message: messageOf(error) });
      }
      // Without both readings (an answer lost), the pause counts as late: its scope is then not trusted.
      const delayMs =
        forwardedAt !== undefined && reachedAt !== undefined ? Math.max(0, reachedAt - forwardedAt) : Number.POSITIVE_INFINITY;
      return { stack, scope, delayMs };
    } finally {
      if (paused && !released) {
        const resumed = resumeHangs ? new Promise(() => {}) : ask('Debugger.resume');
        // Cut short by a detach (releaseThreads) as well.
        await Promise.race([within(resumed, commandTimeoutMs, 'Debugger.resume'), detached ?? new Promise(() => {})]).catch(() => {});
      }
      // Closing the main thread's session does NOT resume a worker paused through it (measured on
      // Node 20 and 24): detaching from the worker does, whenever our pause lands.
      if (pauseAsked) {
        // Tried even when the worker ended: should a pause of ours still land in its teardown,
        // only a detach could release it. Its failure then tells nobody anything.
        await detach().catch((error) => {
          if (!ended)
            send({ type: 'error', to: threadId, what: 'the inspector could not let go of the worker', message: messageOf(error) });
        });
      }
      letGo.delete(detach);
      try {
        session.disconnect();
      } catch {
        // Already gone with its worker.
      }
    }
  };

  const stalled = async (w: Watched, lastBeat: number, seq: number, age: number) => {
    const { threadId, captureStacks, thresholdMs, heartbeatMs, latePauseMs } = w.request;
    const at = Date.now() - age;
    const startedMono = nowMs() - age;
    let captured: { stack: WatchdogStackFrame[]; scope: string | undefined; delayMs: number } | undefined;
    let skipped: StackSkipped | undefined;
    let attached = false;
    if (!captureStacks) skipped = 'disabled';
    else if (!inspector) skipped = 'unavailable';
    else if (Atomics.load(main, DEBUGGER) === 1) attached = true;
    else if (released || !takeToken(w)) skipped = 'rate-limited';
    else {
      try {
        const result = await capture(w, seq);
        if (result === 'gone') {
          watched.delete(threadId);
          return;
        }
        if (result === 'foreign') attached = true;
        else captured = result;
      } catch (error) {
        send({ type: 'error', to: threadId, what: 'a worker stall stack could not be captured', message: messageOf(error) });
      }
    }
    if (attached) skipped = 'unavailable';
    // The stall ends when the worker beats again; a worker that went away (unwatch) is forgotten.
    while (Atomics.load(w.beat, SEQ) === seq) {
      if (watched.get(threadId) !== w) return;
      await nap(Math.max(1, Math.min(25, heartbeatMs)));
    }
    const gapMs = Atomics.exchange(w.beat, GAP, 0) || (Atomics.load(w.beat, MS) - lastBeat) | 0 || nowMs() - startedMono;
    const durationMs = Math.max(0, gapMs - heartbeatMs);
    if (durationMs < thresholdMs) return;
    const late = captured !== undefined && captured.delayMs > latePauseMs;
    const message: Extract<ThreadsMessage, { type: 'stall' }> = {
      type: 'stall',
      to: threadId,
      seq,
      durationMs,
      at,
      stack: [],
      stackSource: 'none',
    };
    if (captured) {
      message.stack = captured.stack;
      message.stackSource = late ? 'late-pause' : 'pause';
      if (Number.isFinite(captured.delayMs)) message.pauseDelayMs = Math.round(captured.delayMs * 10) / 10;
      if (captured.scope !== undefined) message.scope = captured.scope;
    }
    if (skipped) message.stackSkipped = skipped;
    if (attached) message.debuggerAttached = true;
    send(message);
  };

  let timer: NodeJS.Timeout | undefined;
  let dueAt = 0;
  const check = () => {
    timer = undefined;
    let nextMs = 1000;
    const now = Math.floor(nowMs()) | 0;
    for (const w of watched.values()) {
      const { thresholdMs } = w.request;
      const seq = Atomics.load(w.beat, SEQ);
      if (w.handling || seq === 0) {
        nextMs = Math.min(nextMs, 25);
        continue;
      }
      const lastBeat = Atomics.load(w.beat, MS);
      // Int32 arithmetic, as in workerMain: the ms counter's wrap is harmless.
      const age = (now - lastBeat) | 0;
      if (age < thresholdMs) {
        nextMs = Math.min(nextMs, Math.max(1, thresholdMs - age));
        continue;
      }
      w.handling = true;
      // Watched again as soon as this stall is handled (finally below), not a second later.
      nextMs = Math.min(nextMs, 25);
      Atomics.store(w.beat, GAP, 0);
      stalled(w, lastBeat, seq, age)
        .catch((error) =>
          send({ type: 'error', to: w.request.threadId, what: 'the worker stall watchdog failed', message: messageOf(error) }),
        )
        .finally(() => {
          w.handling = false;
          schedule(1);
        });
    }
    if (watched.size > 0) schedule(nextMs);
  };
  // A check asked for sooner than the one pending replaces it: a stall handled must not leave its
  // worker unwatched until a later check (a second when nothing else is due).
  const schedule = (ms: number) => {
    const at = nowMs() + ms;
    if (timer !== undefined) {
      if (dueAt <= at) return;
      clearTimeout(timer);
    }
    dueAt = at;
    timer = setTimeout(check, ms);
    timer.unref();
  };

  channel.onmessage = (event: unknown) => {
    const data = (event as { data?: ThreadsMessage }).data;
    if (data?.type === 'unwatch') {
      watched.delete(data.threadId);
      return;
    }
    // Once released, a late request (a worker that was stalled answers our hello after the
    // 'bye') must not be told 'watching': it would hold its stalls for a report that never comes.
    if (data?.type !== 'watch' || released) return;
    if (!watched.has(data.threadId) && watched.size >= MAX_WATCHED) return;
    watched.set(data.threadId, {
      request: data,
      beat: new Int32Array(data.heartbeat),
      handling: false,
      tokens: data.maxStacksPerMinute,
      refilledAt: nowMs(),
    });
    send({ type: 'watching', to: data.threadId, stacks: data.captureStacks && inspector !== undefined });
    schedule(1);
  };
  control.on('message', (message: { type?: string }) => {
    if (message?.type !== RELEASE) return;
    released = true;
    send({ type: 'bye' });
    Promise.allSettled([...letGo].map((go) => go())).then(() => control.postMessage({ type: RELEASED }));
  });
  // Workers that started before this thread announce themselves now.
  send({ type: 'hello' });
}

/**
 * Posts `message` to the watchdog thread and waits for its answer `reply`, at most `ms`: the
 * watchdog asks its thread to let go of what it paused before terminating it.
 */
export function ask(port: MessagePort, message: { type: string }, reply: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      port.off('message', onMessage);
      resolve();
    };
    const onMessage = (answer: { type?: string }) => {
      if (answer?.type === reply) done();
    };
    // Ref'd, and bounded: whoever awaits stop() keeps the process alive until the answer, at most `ms`.
    const timer = setTimeout(done, ms);
    port.on('message', onMessage);
    port.ref();
    port.postMessage(message);
  });
}

/** Asks the watchdog thread to let go of any worker it has paused, and waits for it (at most `ms`). */
export function releaseThreads(port: MessagePort, ms = 200): Promise<void> {
  return ask(port, { type: 'release-threads' }, 'threads-released', ms);
}

/** The source that starts threadsMain in the watchdog thread, appended to workerSource(). */
export function threadsSource(): string {
  return `
const threadsMain = ${threadsMain.toString()};
{
  const data = require('node:worker_threads').workerData;
  threadsMain(data, require);
}
`;
}
