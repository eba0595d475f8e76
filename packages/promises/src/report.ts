import type { TrackerStackFrame } from './types.js';

/** One report per creation site and kind in this interval; the rest are counted. */
const REPORT_EVERY_MS = 60_000;
/** Creation sites remembered for the rule above (oldest forgotten first). */
const MAX_SITES = 1_000;

interface Site {
  at: number;
  suppressed: number;
}

/**
 * The once-per-site-per-minute rule: which reports are made, and how many were left out before
 * each; at most 1,000 sites remembered (oldest forgotten first). Promise reports' rule, and core's
 * backpressure reports'.
 */
export class SiteLimiter {
  readonly #sites = new Map<string, Site>();

  /** The number left out since the previous report of `key` when this one is to be made; undefined when it is left out too. */
  admit(key: string, now: number): number | undefined {
    const site = this.#sites.get(key);
    if (site !== undefined && now - site.at < REPORT_EVERY_MS) {
      site.suppressed++;
      return undefined;
    }
    // Deleted and set again, so that the map's order stays the order of the last report.
    if (site !== undefined) this.#sites.delete(key);
    else if (this.#sites.size >= MAX_SITES) {
      const oldest = this.#sites.keys().next().value;
      if (oldest !== undefined) this.#sites.delete(oldest);
    }
    this.#sites.set(key, { at: now, suppressed: 0 });
    return site?.suppressed ?? 0;
  }

  clear(): void {
    this.#sites.clear();
  }
}

/** The rejection reason of an `unhandled` report: one line, at most 200 characters. */
export function describeReason(reason: unknown): string {
  let text: string;
  try {
    text = reason instanceof Error ? `${reason.name}: ${reason.message}` : typeof reason === 'string' ? reason : String(reason);
  } catch {
    text = Object.prototype.toString.call(reason);
  }
  text = text.split('\n', 1)[0] ?? '';
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

// '    at fn (url:line:column)' or '    at url:line:column' of a formatted V8 stack.
const FRAME_LINE = /^\s+at (?:(.*?) \((.+):(\d+):(\d+)\)|(.+):(\d+):(\d+))$/;

interface ReasonSite {
  /** Identifies the site for the once-per-minute rule: never the reason's message. */
  key: string;
  frames: TrackerStackFrame[];
}

function typeOf(reason: unknown): string {
  if (reason === null || (typeof reason !== 'object' && typeof reason !== 'function')) return typeof reason;
  const name = (reason as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name.length <= 100 ? name : 'object';
}

/**
 * Where a rejection whose promise was not tracked comes from, cheaply, on the rare unhandled path:
 * the top frames of an Error reason's stack that are the application's. Keyed by the message, a
 * caller that puts request input in it (`new Error('bad input ' + id)`) would get one report per
 * value and push every real site out of the map. The message is cut off before parsing (it may hold
 * lines that look like frames); without a frame the key is the route and the reason's type.
 */
export function reasonSite(reason: unknown, scope: object | undefined, isUser: (url: string) => boolean, depth: number): ReasonSite {
  const frames: TrackerStackFrame[] = [];
  if (reason instanceof Error) {
    const stack = reason.stack;
    const head = `${reason.name}: ${reason.message}`;
    const message = String(reason.message);
    const body = typeof stack !== 'string' ? '' : stack.startsWith(head) ? stack.slice(head.length) : message.includes('\n') ? '' : stack;
    const all: TrackerStackFrame[] = [];
    for (const line of body.split('\n', 64)) {
      const m = FRAME_LINE.exec(line);
      if (m === null) continue;
      const url = m[2] ?? m[5] ?? '';
      all.push({ functionName: m[1] ?? '', url, line: Number(m[3] ?? m[6]), column: Number(m[4] ?? m[7]) });
    }
    const mine = all.filter((f) => isUser(f.url));
    frames.push(...(mine.length > 0 ? mine : all).slice(0, depth));
  }
  const top = frames[0];
  if (top !== undefined) return { key: `${top.url}:${top.line}:${top.column}`, frames };
  const route = (scope as { route?: unknown } | undefined)?.route;
  return { key: `route:${typeof route === 'string' ? route : ''}|${typeOf(reason)}`, frames };
}
