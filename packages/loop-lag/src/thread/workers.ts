// The part of the watchdog thread that watches the process's worker threads: they announce
// themselves on a BroadcastChannel (worker-watchdog.ts), and each is watched by the same engine as the
// main thread, through a WorkerTarget.

import { BroadcastChannel } from 'node:worker_threads';
import { int32Ms, SLOT, since } from '../heartbeat.js';
import { type Problem, THREADS_CHANNEL, type ThreadsMessage, type WatchRequest } from '../protocol.js';
import { messageOf } from './clock.js';
import type { Faults } from './faults.js';
import type { Inspector } from './target.js';
import { type Shared, Watched } from './watched.js';
import { WorkerTarget } from './worker-target.js';

/** Most threads watched at once; a thread past it times its stalls itself (docs/loop-lag.md). */
const MAX_WATCHED = 64;

export interface WorkersWatch {
  /** The watchdog stops: every worker paused through this thread is let go, and none is paused again. */
  release(): Promise<void>;
}

export function watchWorkers(shared: Shared, inspector: Inspector | undefined, faults: Faults): WorkersWatch {
  const watched = new Map<number, Watched>();
  // The captures under way: each is detached from at once when the watchdog stops, before this
  // thread is terminated, because a worker paused through a session that goes away stays paused.
  const active = new Set<WorkerTarget>();
  let released = false;
  const channel = new BroadcastChannel(THREADS_CHANNEL);
  // Never what keeps this thread alive: the control port is.
  channel.unref();
  const send = (message: ThreadsMessage) => channel.postMessage(message);
  const problemOf = (threadId: number) => (problem: Problem, error: unknown) =>
    send({ type: 'error', to: threadId, problem, message: messageOf(error) });

  const watch = (request: WatchRequest): Watched => {
    const { threadId } = request;
    const current = () => watched.get(threadId) === w;
    const onError = problemOf(threadId);
    const w: Watched = new Watched(request, shared, {
      threadId,
      noun: 'worker',
      target: () => {
        if (!inspector) throw new Error('the inspector is not available');
        const target: WorkerTarget = new WorkerTarget(threadId, inspector, faults, {
          commandTimeoutMs: shared.commandTimeoutMs,
          now: shared.now,
          nap: (ms) => shared.naps.nap(ms),
          watched: current,
          released: () => released,
          onError,
          onClosed: () => active.delete(target),
        });
        active.add(target);
        return target;
      },
      profiler: false,
      mayCapture: () => !released,
      gone: () => !current(),
      forget: () => {
        if (current()) watched.delete(threadId);
      },
      onAttached: () => {},
      deliver: (stall, { seq }) => send({ type: 'stall', ...stall, to: threadId, seq }),
      onError,
    });
    return w;
  };

  let timer: NodeJS.Timeout | undefined;
  let dueAt = 0;
  const check = () => {
    timer = undefined;
    let nextMs = 1000;
    const now = int32Ms(shared.now());
    for (const [threadId, w] of watched) {
      const { thresholdMs } = w.config;
      const seq = Atomics.load(w.beat, SLOT.seq);
      if (w.handling || seq === 0) {
        nextMs = Math.min(nextMs, 25);
        continue;
      }
      const lastBeat = Atomics.load(w.beat, SLOT.ms);
      const age = since(now, lastBeat);
      if (age < thresholdMs) {
        nextMs = Math.min(nextMs, Math.max(1, thresholdMs - age));
        continue;
      }
      w.handling = true;
      // Watched again as soon as this stall is handled (finally below), not a second later.
      nextMs = Math.min(nextMs, 25);
      Atomics.store(w.beat, SLOT.gap, 0);
      w.stalled(lastBeat, seq, shared.now(), age)
        .catch((error) => problemOf(threadId)('watch', error))
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
    const at = shared.now() + ms;
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
    watched.set(data.threadId, watch(data));
    const able = data.capture === 'native' ? shared.native() !== undefined : inspector !== undefined;
    send({ type: 'watching', to: data.threadId, stacks: data.captureStacks && able });
    schedule(1);
  };
  // Workers that started before this thread announce themselves now.
  send({ type: 'hello' });

  return {
    async release() {
      released = true;
      send({ type: 'bye' });
      await Promise.allSettled([...active].map((target) => target.detach()));
    },
  };
}
