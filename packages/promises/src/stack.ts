import type { TrackerStackFrame } from './types.js';

/**
 * The default `frameFilter`: a frame is yours unless it is a `node:` internal or comes from
 * `node_modules`. Compose it to count your own packages in node_modules as yours:
 *
 * @example
 * createMonitor({ promises: { frameFilter: (url) => isUserFrame(url) || url.includes('/node_modules/@acme/') } });
 */
export function isUserFrame(url: string): boolean {
  return url !== '' && !url.startsWith('node:') && !url.includes('/node_modules/') && !url.includes('\\node_modules\\');
}

interface CallSiteLike {
  getFileName(): string | null | undefined;
  getScriptNameOrSourceURL?(): string | null | undefined;
  getFunctionName(): string | null;
  getTypeName(): string | null;
  getLineNumber(): number | null;
  getColumnNumber(): number | null;
}

/** A stack captured cheaply at creation (V8 formats it only when read). */
export type CapturedStack = { stack?: unknown };

/**
 * Captures the current stack without formatting it: V8 keeps the raw frames until `.stack` is
 * read, which only happens for a promise that is reported.
 */
export function capture(depth: number, below: (...args: never) => unknown): CapturedStack {
  const holder: CapturedStack = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = depth;
  try {
    Error.captureStackTrace(holder, below);
  } finally {
    // Whatever happens (a stack overflow inside the hook), the app's own limit comes back.
    Error.stackTraceLimit = limit;
  }
  return holder;
}

interface RawFrame extends TrackerStackFrame {
  /** A builtin (`new Promise`, `Promise.then`, `Array.map`): no script behind it. */
  builtin: boolean;
}

const asCallSites = (_error: Error, sites: CallSiteLike[]): CallSiteLike[] => sites;

function read(holder: CapturedStack): RawFrame[] {
  // Structured frames, whatever prepareStackTrace the application installed (source-map-support…).
  const previous = Error.prepareStackTrace;
  let sites: unknown;
  try {
    Error.prepareStackTrace = asCallSites as typeof Error.prepareStackTrace;
    sites = holder.stack;
  } finally {
    Error.prepareStackTrace = previous;
  }
  if (!Array.isArray(sites)) return [];
  return (sites as CallSiteLike[]).map((site) => {
    const url = site.getFileName() ?? site.getScriptNameOrSourceURL?.() ?? '';
    const name = site.getFunctionName() ?? '';
    // Builtins are named by their receiver's type too: `Async-from-Sync Iterator.next`.
    const type = url === '' ? site.getTypeName() : null;
    return {
      functionName: type ? `${type}.${name}` : name,
      url,
      line: site.getLineNumber() ?? 0,
      column: site.getColumnNumber() ?? 0,
      builtin: url === '',
    };
  });
}

// Frames of the hook dispatch itself sit between V8 and our init hook when several hooks are registered.
const HOOK_DISPATCH = /^node:internal\/(promise_hooks|async_hooks)/;

export interface Creation {
  /** The frames to report: the caller's own frames, or every frame with a script when none is. */
  frames: TrackerStackFrame[];
  /** Whether a floating promise is the application's to observe (see `owner()`). */
  floatingOwned: boolean;
  /** Whether a pending promise is the application's work (it made it, or called what made it). */
  pendingOwned: boolean;
  /** Identifies the creation site for the once-per-minute rule. */
  site: string;
}

/**
 * Reads a captured stack and decides who owns the promise. The creator is the function that made
 * it: the async function itself (V8 shows it as the top frame), or the function that called the
 * builtin (`new Promise`, `Promise.resolve`, `Promise.all`). The receiver is the frame that called
 * the creator: it got the promise back.
 *
 * A floating promise is reported when the receiver is yours, or, for builtins, when the creator is:
 * an async handler that Express 4 or an EventEmitter calls and drops belongs to the library that
 * dropped it, not to you (its rejection is still reported as unhandled).
 */
export function describeCreation(holder: CapturedStack, isUser: (url: string) => boolean): Creation {
  let raw = read(holder);
  let start = 0;
  while (start < raw.length && HOOK_DISPATCH.test(raw[start]?.url ?? '')) start++;
  if (start > 0) raw = raw.slice(start);
  const top = raw[0];
  const topIsBuiltin = top?.builtin ?? false;
  // V8's for-await over a sync iterable makes its own promises and observes them without a
  // reaction promise the hooks could see: they are V8's, never the application's.
  if (topIsBuiltin && top?.functionName.startsWith('Async-from-Sync Iterator')) {
    return { frames: [], floatingOwned: false, pendingOwned: false, site: '' };
  }
  const scripted = raw.filter((f) => !f.builtin);
  const creator = scripted[0];
  const receiver = scripted[1];
  const userCreator = creator !== undefined && isUser(creator.url);
  const userReceiver = receiver !== undefined && isUser(receiver.url);
  const mine = scripted.filter((f) => isUser(f.url));
  const frames = (mine.length > 0 ? mine : scripted).map(({ functionName, url, line, column }) => ({ functionName, url, line, column }));
  const site = frames
    .slice(0, 2)
    .map((f) => `${f.url}:${f.line}:${f.column}`)
    .join('|');
  return {
    frames,
    floatingOwned: topIsBuiltin ? userCreator || userReceiver : userReceiver,
    pendingOwned: userCreator || userReceiver,
    site,
  };
}
