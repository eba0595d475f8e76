// The native capture backend: the blocked thread is asked for its stack by the addon
// (`Isolate::RequestInterrupt`, then V8's current stack trace on that thread), with no debugger
// session, and sampled while it stays blocked. It gives the engine (watched.ts) the same Captured
// as the inspector's capture (capture.ts), so reports are built by one code path.

import { pathToFileURL } from 'node:url';
import { SLOT } from '../heartbeat.js';
import type { NativeAddon, NativeFrame } from '../native.js';
import type { WatchdogStackFrame } from '../types.js';
import type { Captured } from './capture.js';
import type { Naps } from './clock.js';
import type { Faults } from './faults.js';

/** While the thread stays blocked, a sample every this many ms… */
const SAMPLE_EVERY_MS = 25;
/** …and at most this many per stall (one second of samples; then the stall is only timed until it ends). */
const MAX_SAMPLES = 40;

export interface NativeContext {
  beat: Int32Array;
  seq: number;
  /** The thread's name with the addon. */
  name: string;
  maxFrames: number;
  /** A sample answered later than this came after native code returned. */
  latePauseMs: number;
  naps: Naps;
  now: () => number;
  exiting: () => boolean;
  faults: Faults;
}

interface Sample {
  stack: WatchdogStackFrame[];
  delayMs: number;
  /** expectBlocking() was running when the stack came back. */
  declared: boolean;
}

/** The default rule for the application's own frames (report.ts's): the key samples are grouped by. */
const isApplicationUrl = (url: string) => url !== '' && !url.startsWith('node:') && !/[\\/]node_modules[\\/]/.test(url);

/** The addon's frame as loopsight's: `file://` URLs like the inspector's, '' for an anonymous function or an unknown script. */
function frameOf(f: NativeFrame): WatchdogStackFrame {
  let url = typeof f.filename === 'string' && f.filename !== '<unknown>' ? f.filename : '';
  if (url.startsWith('/') || /^[A-Za-z]:[\\/]/.test(url)) {
    try {
      url = pathToFileURL(url).href;
    } catch {
      // Kept as the addon gave it.
    }
  }
  const name = typeof f.function === 'string' && f.function !== '?' ? f.function : '';
  return { functionName: name, url, line: Number(f.lineno) || 0, column: Number(f.colno) || 0 };
}

/** One stack of the thread, or undefined when the addon returned none for it (it exited, or never took the interrupt). */
function sample(addon: NativeAddon, c: NativeContext): Sample | undefined {
  const fault = c.faults.at('native-capture');
  if (fault === 'fail') throw new Error('captureStackTrace failed (injected)');
  const asked = c.now();
  if (fault === 'hang') {
    // A capture that holds this thread, as one waiting on a thread in native code does (up to 5 s).
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_000);
  }
  const thread = addon.captureStackTrace()[c.name];
  const delayMs = c.now() - asked;
  const declared = Atomics.load(c.beat, SLOT.expected) === 1;
  if (!thread || !Array.isArray(thread.frames) || thread.frames.length === 0) return undefined;
  const taken: Sample = { stack: thread.frames.slice(0, c.maxFrames).map(frameOf), delayMs, declared };
  return taken;
}

/**
 * What samples are grouped by: the application's frames (function and script, not the line), else
 * the top frame. Two callers of one helper are two stacks; the lines a loop moves through are one.
 */
function keyOf(stack: WatchdogStackFrame[]): string {
  const app = stack.filter((f) => isApplicationUrl(f.url));
  return (app.length > 0 ? app : stack.slice(0, 1)).map((f) => `${f.functionName}\u0000${f.url}`).join('\u0001');
}

/**
 * Samples the blocked thread until it runs again (at most MAX_SAMPLES, every SAMPLE_EVERY_MS) and
 * returns the dominant stack: a sample of the largest group by application frames, with
 * `samples` its group's size. The first sample is kept even if the thread ran again meanwhile (its
 * delay tells a late one, as a late pause); later ones only while the thread is still blocked.
 * Undefined when no stack came back.
 */
export async function sampleNative(addon: NativeAddon, c: NativeContext): Promise<Captured | undefined> {
  const samples: Sample[] = [];
  for (;;) {
    if (c.exiting()) break;
    const taken = sample(addon, c);
    const blocked = Atomics.load(c.beat, SLOT.seq) === c.seq;
    if (taken && (blocked || samples.length === 0)) samples.push(taken);
    if (!blocked || samples.length >= MAX_SAMPLES) break;
    await c.naps.nap(SAMPLE_EVERY_MS);
    if (Atomics.load(c.beat, SLOT.seq) !== c.seq) break;
  }
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = keyOf(s.stack);
    const group = groups.get(key);
    if (group) group.push(s);
    else groups.set(key, [s]);
  }
  let best: Sample[] | undefined;
  // Map order is first-seen order: a tie goes to the stack seen first.
  for (const group of groups.values()) if (!best || group.length > best.length) best = group;
  if (!best || best.length === 0) return undefined;
  // A sample answered promptly shows JavaScript that was running there. One answered late came
  // after native code returned (or after this thread was not scheduled for a while, on a loaded
  // machine): the group counts as late only if every one of its samples was.
  const prompt = best.find((s) => s.delayMs <= c.latePauseMs);
  const first = prompt ?? (best[0] as Sample);
  const captured: Captured = { stack: first.stack, maps: [], delayMs: first.delayMs, samples: best.length };
  if (first.declared) captured.declared = true;
  return captured;
}
