// The watchdog thread: started by the main thread's watchdog (watchdog.ts) with a WorkerConfig
// as its workerData. It watches the main thread's heartbeat, and the heartbeats of the worker
// threads that ask it to (workers.ts), with one engine (watched.ts).

import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';
import { beatEveryMs, int32Ms, monotonicMs, SLOT, since } from '../heartbeat.js';
import { loadNative, type NativeAddon } from '../native.js';
import type { MainMessage, Problem, WorkerConfig, WorkerMessage } from '../protocol.js';
import { createSourceMapper } from '../sourcemap.js';
import type { WatchdogStackFrame } from '../types.js';
import type { Captured } from './capture.js';
import { messageOf, Naps } from './clock.js';
import { Faults } from './faults.js';
import { MainTarget } from './main-target.js';
import { loadInspector } from './target.js';
import { Debuggers, type Shared, Watched } from './watched.js';
import { watchWorkers } from './workers.js';

const config = workerData as WorkerConfig;
const beat = new Int32Array(config.heartbeat);
const port = config.port;
const send = (message: WorkerMessage) => port.postMessage(message);
const fail = (problem: Problem, error: unknown) => send({ type: 'error', problem, message: messageOf(error) });
const naps = new Naps();
const faults = new Faults(config.faults);
const loaded = loadInspector();
const inspector = loaded instanceof Error ? undefined : loaded;
// The addon, loaded when a thread first asks for the native backend: the watched thread loaded it
// to register itself, so it loads here too (the same files, the same process).
let addon: NativeAddon | Error | undefined;
const native = (): NativeAddon | undefined => {
  if (addon === undefined) {
    // No warm-up capture here: the addon waits (up to 5 s, this thread blocked) for the watched
    // thread to run JavaScript, and an idle or stopping thread runs none (40 start/stop cycles
    // took over 30 s). The first sample may pay the addon's setup (4–30 ms) and read as late.
    addon = loadNative(faults.at('native-load') === 'fail');
  }
  return addon instanceof Error ? undefined : addon;
};
const mainNative = config.capture === 'native';
// The main thread loaded the addon to register itself: it loads here too (else, below, the
// inspector takes the main thread's stalls).
const stacks = config.captureStacks && (mainNative || inspector !== undefined);
if (config.captureStacks && !mainNative && loaded instanceof Error) {
  send({ type: 'degraded', reason: `the inspector is not available (${loaded.message}); stalls are timed without stacks` });
}

let exiting = false;
let handling = false;
const debuggers = new Debuggers(beat, config.debuggerQuietMs, monotonicMs);
let debuggerSaid = false;
const inspectorOpen = 'another debugger may be attached (the inspector is open); stalls are timed without stacks';
const sayDebugger = (reason: string) => {
  if (debuggerSaid) return;
  debuggerSaid = true;
  send({ type: 'debugger', reason });
};
if (stacks && !mainNative && config.inspectorInUse) sayDebugger(inspectorOpen);

// Source maps: one mapper for every thread's stacks, made at the first stack to map.
let mapFrame: ReturnType<typeof createSourceMapper> | undefined;
const skippedMaps = new Set<string>();
/** The stall whose stack is being mapped: reported by the main thread should this thread die meanwhile. */
let mapping = { durationMs: 0, at: 0, thread: 0 };
/** A map was read while mapping the current stack. */
let mapLoaded = false;
const mapStack = (captured: Captured, stall: typeof mapping): WatchdogStackFrame[] => {
  const limits = config.sourceMaps;
  if (!limits) return captured.stack;
  mapping = stall;
  mapLoaded = false;
  try {
    mapFrame ??= createSourceMapper(
      createRequire(`${process.cwd()}/`),
      limits,
      (url, why) => {
        // Once per script, and a bounded number of scripts.
        if (skippedMaps.has(url) || skippedMaps.size >= 100) return;
        skippedMaps.add(url);
        send({ type: 'sourcemap', url, why });
      },
      {
        onLoad: (url) => {
          mapLoaded = true;
          send({ type: 'mapping', url, ...mapping });
        },
        denied: config.deniedMaps,
      },
    );
    const map = mapFrame;
    const mapped = captured.stack.map((frame, i) => map(frame, captured.maps[i]));
    // The main thread's stall report says the same; a worker's goes elsewhere.
    if (mapLoaded && stall.thread !== 0) send({ type: 'mapped' });
    return mapped;
  } catch (error) {
    fail('sourcemap', error);
    return captured.stack;
  }
};

const shared: Shared = {
  naps,
  now: monotonicMs,
  stacks: config.captureStacks && inspector !== undefined,
  native,
  faults,
  debuggers,
  mapStack,
  commandTimeoutMs: config.commandTimeoutMs,
  reachTimeoutMs: config.reachTimeoutMs,
  exiting: () => exiting,
};

const mainTarget = inspector
  ? new MainTarget(inspector, faults, {
      keepSession: config.debuggerMode === 'always',
      commandTimeoutMs: config.commandTimeoutMs,
      now: monotonicMs,
      onForeign: () => debuggers.seen(),
      onError: fail,
    })
  : undefined;

const main = new Watched(config, shared, {
  threadId: 0,
  noun: 'main thread',
  target: () => {
    if (!mainTarget) throw new Error('the inspector is not available');
    return mainTarget;
  },
  profiler: config.profiler,
  mayCapture: () => true,
  gone: () => false,
  forget: () => {},
  onAttached: () =>
    sayDebugger(
      debuggers.serverOpen()
        ? inspectorOpen
        : 'a debugger paused the main thread; stalls are timed without stacks while one may be attached',
    ),
  deliver: (stall, { window, wantsProfile }) => send({ type: 'stall', ...stall, window, wantsProfile }),
  onError: fail,
});

const workers = watchWorkers(shared, inspector, faults);

/** The process exits: close the session so that Node does not wait for a debugger, and say so. */
const letGo = () => {
  mainTarget?.letGo();
  Atomics.store(beat, SLOT.busy, 0);
  Atomics.notify(beat, SLOT.busy);
  send({ type: 'let-go' });
};

/**
 * A stall that began and ended while this thread could not look (mapping a large source map, or
 * not scheduled on a loaded machine): the main thread's longest gap between beats tells it. It is
 * reported without a stack, never lost. It asks for no profile: taking one blocks the main thread
 * in turn (hundreds of ms on Node 24 under load), and the stall that follows, the one the profile
 * is for, would then find the profiler busy.
 */
const missed = (now: number) => {
  const everyMs = beatEveryMs(beat, config.heartbeatMs);
  if (Atomics.load(beat, SLOT.gap) - everyMs < config.thresholdMs) return;
  const gapMs = Atomics.exchange(beat, SLOT.gap, 0);
  const durationMs = gapMs - everyMs;
  if (durationMs < config.thresholdMs) return;
  // The beat that ended the gap, not the last one: shorter gaps since leave the longest in place,
  // and a window placed after the stall would take its profile stack from later work.
  const endedAgo = since(int32Ms(now), Atomics.load(beat, SLOT.gapEnd));
  const endedMono = now - endedAgo;
  send({
    type: 'stall',
    durationMs,
    at: Date.now() - endedAgo - gapMs,
    stack: [],
    stackSource: 'none',
    window: [(endedMono - gapMs) * 1000, endedMono * 1000],
    wantsProfile: false,
    stackSkipped: 'unavailable',
  });
};

/**
 * Checks the heartbeat and sleeps until the last beat could first turn stale: on a healthy loop
 * that is one wake-up per threshold (10 a second at 100 ms) rather than one per beat, and a stall
 * is still seen the moment it reaches the threshold.
 */
const check = () => {
  if (exiting) return;
  const lastBeat = Atomics.load(beat, SLOT.ms);
  const seq = Atomics.load(beat, SLOT.seq);
  if (seq === 0) {
    setTimeout(check, config.pollMs).unref(); // no heartbeat yet
    return;
  }
  const now = monotonicMs();
  const age = since(int32Ms(now), lastBeat);
  if (age < config.thresholdMs) {
    missed(now);
    setTimeout(check, Math.max(1, config.thresholdMs - age)).unref();
    return;
  }
  // Busy before reading EXITING, the main thread sets EXITING before reading BUSY: one of the two
  // sees the other, so an exit never misses a capture that has begun.
  handling = true;
  Atomics.store(beat, SLOT.gap, 0);
  Atomics.store(beat, SLOT.busy, 1);
  if (Atomics.load(beat, SLOT.exiting) === 1) exiting = true;
  const handled = exiting ? Promise.resolve() : main.stalled(lastBeat, seq, now, age);
  handled
    .catch((error) => fail('watch', error))
    .finally(() => {
      handling = false;
      if (exiting) return letGo();
      if (!mainTarget?.holdsSession()) Atomics.store(beat, SLOT.busy, 0);
      setTimeout(check, config.pollMs).unref();
    });
};

port.on('message', (message: MainMessage) => {
  if (message?.type === 'release-threads') {
    workers.release().then(() => port.postMessage({ type: 'threads-released' } satisfies WorkerMessage));
    return;
  }
  if (message?.type !== 'exit') return;
  exiting = true;
  naps.wakeAll();
  if (!handling) letGo();
});

const begin = async () => {
  setTimeout(check, config.pollMs).unref();
  if (stacks && !mainNative && mainTarget && config.debuggerMode === 'always') {
    try {
      Atomics.store(beat, SLOT.busy, 1);
      await mainTarget.openEnabled();
    } catch (error) {
      fail('setup', error);
    }
  }
  send({ type: 'ready', stacks });
  // After the first check is due: loading the addon takes tens of ms, and a stall that begins
  // meanwhile is seen as soon as it is done.
  if (stacks && mainNative) {
    setImmediate(() => {
      if (config.capture !== 'native' || native()) return;
      // The main thread loaded it, this thread cannot: the inspector takes its stacks.
      config.capture = 'inspector';
      send({
        type: 'capture',
        capture: 'inspector',
        reason: `the native addon did not load in the watchdog thread (${(addon as Error).message})`,
      });
    });
  }
};
begin();
