// The native capture backend's addon, @sentry-internal/node-native-stacktrace: an optional
// dependency, loaded only when a watchdog starts (never on import), and a failed load is a fallback
// to the inspector, never an error. Both the watched threads (which register themselves) and the
// watchdog thread (which captures) load it through here.

import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { threadId } from 'node:worker_threads';

/** The addon's surface loopsight uses (its lib/index.d.ts). */
export interface NativeAddon {
  registerThread(name: string): void;
  captureStackTrace(): Record<string, { frames: NativeFrame[] }>;
}

export interface NativeFrame {
  function: string;
  filename: string;
  lineno: number;
  colno: number;
}

const NATIVE_PACKAGE = '@sentry-internal/node-native-stacktrace';

/** The addon's name for a thread of this process: namespaced, so another user of the addon keeps its own names. */
export const nativeName = (id: number): string => `loopsight:${id}`;

/** Where this module is: its package's node_modules hold the addon. */
function here(): string {
  return typeof __filename === 'string' ? pathToFileURL(__filename).href : import.meta.url;
}

let loaded: NativeAddon | Error | undefined;

/** The addon, or why it did not load (not installed, no prebuilt binary for this platform or ABI). Loaded once per module copy. */
export function loadNative(fail = false): NativeAddon | Error {
  if (fail) return new Error(`${NATIVE_PACKAGE} could not be loaded (injected)`);
  if (loaded) return loaded;
  try {
    const addon = createRequire(here())(NATIVE_PACKAGE) as NativeAddon;
    const usable = typeof addon?.captureStackTrace === 'function' && typeof addon.registerThread === 'function';
    loaded = usable ? addon : new Error(`${NATIVE_PACKAGE} has an unexpected shape`);
  } catch (error) {
    loaded = error instanceof Error ? error : new Error(String(error));
  }
  return loaded;
}

/** Which backend takes a thread's stacks, and why, as status() tells it. */
export interface CaptureChoice {
  backend: 'native' | 'inspector';
  reason: string;
  /** Said once through onError: what the user asked for cannot be done in full. */
  warning?: string;
}

/**
 * Why the native backend never names the request. The addon reads an AsyncLocalStorage store
 * inside a V8 interrupt on the blocked thread, and serializing it there takes a termination asked
 * for meanwhile as its own: the blocked script then runs on, and a `vm` timeout or
 * `worker.terminate()` is lost. Reproduced on Node 24: `vm.runInNewContext('while (true) {}')`
 * with 60–100 ms timeouts inside a request's scope, sampled every stall, spun forever within 50
 * calls in 3 runs of 3; without the store, 300 of 300 calls timed out as asked.
 */
const NO_REQUEST = 'its read of the request on the blocked thread can lose a V8 termination';

/**
 * Picks the backend and, for `native`, registers the calling thread with the addon (it must be
 * called on the watched thread), without a scope store. `auto` is the inspector: only it names the
 * request safely. `native` is what was asked for: stacks, sampled, without the request.
 */
export function chooseCapture(wanted: 'auto' | 'native' | 'inspector', fail: boolean): CaptureChoice & { addon?: NativeAddon } {
  if (wanted === 'inspector') return { backend: 'inspector', reason: 'capture: inspector' };
  if (wanted === 'auto')
    return { backend: 'inspector', reason: `auto: the inspector names the request; the native backend cannot (${NO_REQUEST})` };
  const addon = loadNative(fail);
  if (addon instanceof Error) {
    const reason = `native: ${NATIVE_PACKAGE} did not load (${addon.message.split('\n')[0]}); the inspector takes the stacks`;
    return { backend: 'inspector', reason, warning: reason };
  }
  try {
    register(addon);
  } catch (error) {
    const reason = `native: the thread could not be registered with ${NATIVE_PACKAGE} (${error instanceof Error ? error.message : String(error)}); the inspector takes the stacks`;
    return { backend: 'inspector', reason, warning: reason };
  }
  const reason = `native: stacks without the request (${NO_REQUEST}); the requests in flight are candidates`;
  return { backend: 'native', reason, warning: reason, addon };
}

/** Per isolate: the addon keeps the first registration of a thread. */
const REGISTERED = Symbol.for('loopsight.loop-lag.native-registered.v1');

function register(addon: NativeAddon): void {
  const g = globalThis as { [REGISTERED]?: unknown };
  if (g[REGISTERED] !== undefined) return;
  addon.registerThread(nativeName(threadId));
  g[REGISTERED] = null;
}
