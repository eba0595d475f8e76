// The native capture backend's addon, @sentry-internal/node-native-stacktrace: an optional
// dependency, loaded only when a watchdog starts (never on import), and a failed load is a fallback
// to the inspector, never an error. Both the watched threads (which register themselves) and the
// watchdog thread (which captures) load it through here.

import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { threadId } from 'node:worker_threads';

/** The addon's surface loopsight uses (its lib/index.d.ts). */
export interface NativeAddon {
  registerThread(storage: { asyncLocalStorage: unknown; stateLookup?: (string | symbol)[] }, name: string): void;
  registerThread(name: string): void;
  captureStackTrace(): Record<string, { frames: NativeFrame[]; asyncState?: unknown }>;
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

/**
 * Whether the addon can read an AsyncLocalStorage store on the blocked thread: only with
 * AsyncContextFrame, the default from Node 24 (`--no-async-context-frame` turns it off).
 */
function nativeReadsScope(): boolean {
  const major = Number(process.versions.node.split('.')[0]);
  const off = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--no-async-context-frame');
  return major >= 24 && !off;
}

/** Which backend takes a thread's stacks, and why, as status() tells it. */
export interface CaptureChoice {
  backend: 'native' | 'inspector';
  reason: string;
  /** Said once through onError: what the user asked for cannot be done in full. */
  warning?: string;
}

/**
 * Picks the backend and, for `native`, registers the calling thread with the addon (it must be
 * called on the watched thread). `auto`: native where the addon loads and can name the request
 * (a scope store given, Node ≥ 24), the inspector otherwise.
 */
export function chooseCapture(
  wanted: 'auto' | 'native' | 'inspector',
  storage: unknown,
  fail: boolean,
): CaptureChoice & { addon?: NativeAddon } {
  if (wanted === 'inspector') return { backend: 'inspector', reason: 'capture: inspector' };
  const readsScope = storage !== undefined && nativeReadsScope();
  if (wanted === 'auto' && !readsScope) {
    const why = storage === undefined ? 'no scope store was given to read the request from' : `Node ${process.versions.node} < 24`;
    return { backend: 'inspector', reason: `auto: the native backend cannot name the request here (${why})` };
  }
  const addon = loadNative(fail);
  if (addon instanceof Error) {
    const reason = `${wanted}: ${NATIVE_PACKAGE} did not load (${addon.message.split('\n')[0]}); the inspector takes the stacks`;
    return wanted === 'native' ? { backend: 'inspector', reason, warning: reason } : { backend: 'inspector', reason };
  }
  const registered = registeredWith();
  if (registered !== undefined && registered !== (readsScope ? storage : null)) {
    // The addon keeps a thread's first registration: another scope store cannot be read here.
    const reason = `${wanted}: this thread is registered with ${NATIVE_PACKAGE} for another scope store; the inspector takes the stacks`;
    return wanted === 'native' ? { backend: 'inspector', reason, warning: reason } : { backend: 'inspector', reason };
  }
  try {
    register(addon, readsScope ? storage : undefined);
  } catch (error) {
    const reason = `${wanted}: the thread could not be registered with ${NATIVE_PACKAGE} (${error instanceof Error ? error.message : String(error)}); the inspector takes the stacks`;
    return { backend: 'inspector', reason, warning: reason };
  }
  if (readsScope)
    return { backend: 'native', reason: `${wanted}: ${NATIVE_PACKAGE} loaded, Node ${process.versions.node} reads the request`, addon };
  const reason =
    storage === undefined
      ? 'native: no scope store was given; stacks without the request'
      : `native: Node ${process.versions.node} < 24 cannot read the request natively; stacks without the request`;
  return { backend: 'native', reason, warning: reason, addon };
}

/** Per isolate: the addon keeps the first registration of a thread (and its scope store; null: none). */
const REGISTERED = Symbol.for('loopsight.loop-lag.native-registered.v1');

function registeredWith(): unknown {
  return (globalThis as { [REGISTERED]?: unknown })[REGISTERED];
}

function register(addon: NativeAddon, storage: unknown): void {
  const g = globalThis as { [REGISTERED]?: unknown };
  if (g[REGISTERED] !== undefined) return;
  const name = nativeName(threadId);
  if (storage === undefined) addon.registerThread(name);
  else addon.registerThread({ asyncLocalStorage: storage }, name);
  g[REGISTERED] = storage ?? null;
}
