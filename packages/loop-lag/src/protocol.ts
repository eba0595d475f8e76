// What the watched threads and the watchdog thread say to each other. Types and names only: both
// sides import it.

import type { MessagePort } from 'node:worker_threads';
import type { SourceMapLimits } from './sourcemap.js';
import type { CaptureBackend, StackSkipped, StackSource, WatchdogStackFrame } from './types.js';

/**
 * What the watchdog thread reports when a step fails, each with its warning code: the message
 * travels as `problem` (a key here, the warning's site) and the error's text, never matched on.
 */
export const PROBLEMS = Object.freeze({
  'session-close': { code: 'LOOPSIGHT_CAPTURE_FAILED', what: 'the inspector session could not be closed' },
  resume: { code: 'LOOPSIGHT_CAPTURE_FAILED', what: 'the main thread could not be resumed; the inspector session is closed instead' },
  scope: { code: 'LOOPSIGHT_CAPTURE_FAILED', what: 'the request scope could not be read on the paused thread' },
  capture: { code: 'LOOPSIGHT_CAPTURE_FAILED', what: 'a stall stack could not be captured' },
  detach: { code: 'LOOPSIGHT_CAPTURE_FAILED', what: 'the inspector could not let go of the worker' },
  setup: { code: 'LOOPSIGHT_STACKS_OFF', what: 'the inspector could not be set up' },
  sourcemap: { code: 'LOOPSIGHT_SOURCE_MAP', what: 'stall frames could not be source-mapped' },
  watch: { code: 'LOOPSIGHT_WATCHDOG_LOST', what: 'the stall watchdog failed' },
} as const);

export type Problem = keyof typeof PROBLEMS;

/** The steps of a capture, in order; a fault can be injected at each (tests only). */
export type CaptureStep = 'probe' | 'enable' | 'pause' | 'evaluate' | 'resume' | 'disconnect' | 'native-load' | 'native-capture';

/**
 * A fault injected at a step of the next captures: `fail` rejects the command (or throws from
 * disconnect) without sending it, `hang` never answers (disconnect blocks the watchdog thread for
 * 1 s), `kill` ends the watchdog thread there. Used up after `times` captures (default 1).
 */
export interface Fault {
  step: CaptureStep;
  kind: 'fail' | 'hang' | 'kill';
  times?: number;
  /** Given to every watchdog thread the watchdog starts, restarts included; else to the first only. */
  everyWorker?: boolean;
}

/** How one thread is watched: the same for the main thread and for a worker thread. */
export interface WatchConfig {
  /** Slots as in heartbeat.ts's SLOT: the watched thread writes, the watchdog thread reads. */
  heartbeat: SharedArrayBuffer;
  thresholdMs: number;
  heartbeatMs: number;
  captureStacks: boolean;
  maxStacksPerMinute: number;
  /** A pause that lands later than this after it was asked for was delayed by native code. */
  latePauseMs: number;
  /** Evaluated on the paused thread; returns JSON of { request, inflight, candidates }. */
  scopeExpression: string;
  maxFrames: number;
  /** The backend that takes this thread's stacks; `native`: the thread registered itself with the addon as `nativeName`. */
  capture: CaptureBackend;
  nativeName: string;
}

/** What the main thread's watchdog hands the watchdog thread (workerData). */
export interface WorkerConfig extends WatchConfig {
  /** Messages both ways; the main thread can read it synchronously while it exits. */
  port: MessagePort;
  pollMs: number;
  /** The main thread samples a profile: ask for its stack when a pause was late or failed. */
  profiler: boolean;
  debuggerMode: 'always' | 'on-stall';
  /** An inspector server was open at start: say once that stalls go without stacks meanwhile. */
  inspectorInUse: boolean;
  /** Longest wait for a command's answer while the thread is paused, or after it ran again. */
  commandTimeoutMs: number;
  /** Longest wait for the thread to take the pause while it is still blocked. */
  reachTimeoutMs: number;
  /** After a debugger was seen pausing the main thread, captures stay off this long. */
  debuggerQuietMs: number;
  /** Map frames through source maps (after the thread runs again); undefined: do not. */
  sourceMaps?: SourceMapLimits;
  /** Scripts whose map is not decoded: decoding it ended a watchdog thread before. */
  deniedMaps: string[];
  faults: Fault[];
}

/** A stall as the watchdog thread reports it, for any thread. Times are epoch ms (`at`) and ms. */
export interface StallCapture {
  durationMs: number;
  at: number;
  stack: WatchdogStackFrame[];
  stackSource: StackSource;
  /** JSON from the paused frame's scope expression, when a pause landed. */
  scope?: string;
  pauseDelayMs?: number;
  stackSkipped?: StackSkipped;
  /** No stack because a debugger may be attached (`stackSkipped` is 'unavailable'). */
  debuggerAttached?: true;
  /** The thread was inside expectBlocking() when the stall was seen. */
  expected?: true;
  /** A late pause: 1 if its top frame was entered after the pause was asked, 0 if it was already running. */
  enteredAfter?: 0 | 1;
  capture?: CaptureBackend;
  /** Native samples that agreed on the stack. */
  samples?: number;
}

/** Messages from the watchdog thread to the main thread's watchdog. Times are monotonic ms unless named `at`. */
export type WorkerMessage =
  | { type: 'ready'; stacks: boolean }
  | { type: 'degraded'; reason: string }
  /** The watchdog thread took the main thread's stalls to another backend, and why. */
  | { type: 'capture'; capture: CaptureBackend; reason: string }
  | { type: 'debugger'; reason: string }
  | { type: 'error'; problem: Problem; message: string }
  | { type: 'sourcemap'; url: string; why: string }
  /**
   * A script's map is about to be read and decoded: should the watchdog thread die meanwhile, the
   * next does not try it, and the main thread's stall being mapped (`thread` 0) is reported without frames.
   */
  | { type: 'mapping'; url: string; durationMs: number; at: number; thread: number }
  /** A worker's stack whose map was read (`mapping`) is mapped: that map did not end this thread. */
  | { type: 'mapped' }
  /** The inspector session is closed and no capture will begin: the thread may be terminated. */
  | { type: 'let-go' }
  /** Every worker thread paused through this thread was let go (answers `release-threads`). */
  | { type: 'threads-released' }
  | (StallCapture & {
      type: 'stall';
      /** Monotonic µs (V8's profiler clock) of the stall, for the main thread's profile. */
      window: [number, number];
      /** The pause was late or failed: the main thread's profile may know the stack. */
      wantsProfile: boolean;
    });

/** Messages from the main thread's watchdog to the watchdog thread. */
export type MainMessage = { type: 'exit' } | { type: 'release-threads' };

/** The BroadcastChannel the watched worker threads and the watchdog thread talk on. */
export const THREADS_CHANNEL = 'loopsight:loop-lag:threads:v1';

/** What a worker thread asks of the watchdog thread (see worker-watchdog.ts). */
export interface WatchRequest extends WatchConfig {
  type: 'watch';
  threadId: number;
}

/** Messages on THREADS_CHANNEL. `to` is the thread id a message is for: every thread hears every message. */
export type ThreadsMessage =
  | { type: 'hello' }
  /** The watchdog thread stops: workers time their stalls themselves until the next says hello. */
  | { type: 'bye' }
  | WatchRequest
  | { type: 'unwatch'; threadId: number }
  | { type: 'watching'; to: number; stacks: boolean }
  | { type: 'error'; to: number; problem: Problem; message: string }
  | (StallCapture & {
      type: 'stall';
      to: number;
      /** The heartbeat sequence number the stall began after: the worker matches it with its own timing. */
      seq: number;
    });
