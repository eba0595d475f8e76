import type { StallWatchdogOptions, WatchdogStallReport } from './types.js';
import type { WorkerMessage } from './worker.js';

/** Most in-flight requests a report lists as candidates. */
const MAX_CANDIDATES = 10;

/** Up to MAX_CANDIDATES in-flight scopes, copied: they cross a thread as JSON. */
export function copyCandidates<S extends object>(source: StallWatchdogOptions<S>['candidates']): S[] {
  const out: S[] = [];
  if (!source) return out;
  try {
    for (const scope of source()) {
      if (out.length >= MAX_CANDIDATES) break;
      out.push(JSON.parse(JSON.stringify(scope)) as S);
    }
  } catch {
    // Candidates are a hint; a scope that cannot be read is skipped.
  }
  return out;
}

/**
 * What the paused thread hands the watchdog, read inside whatever was blocking it (so small and
 * total): JSON of { request, inflight, candidates }. Candidates too: if the pause turns out late,
 * the scope here is only one of them.
 */
export function scopeJson<S extends object>(
  options: Pick<StallWatchdogOptions<S>, 'getScope' | 'inflight' | 'candidates'>,
): string | undefined {
  try {
    const request = options.getScope();
    return JSON.stringify({ request: request ?? null, inflight: options.inflight(), candidates: copyCandidates(options.candidates) });
  } catch {
    return undefined;
  }
}

/** What a capture brings back, from the main thread's watchdog or a worker's. */
type Captured = Pick<
  Extract<WorkerMessage, { type: 'stall' }>,
  'durationMs' | 'at' | 'stack' | 'stackSource' | 'scope' | 'pauseDelayMs' | 'stackSkipped' | 'debuggerAttached'
>;

/**
 * The report of a captured stall, with the scope read on the paused frame; `here` answers for what
 * the capture did not read (no pause, or a scope that does not serialize).
 */
export function reportOf<S extends object>(captured: Captured, here: { inflight(): number; candidates(): S[] }): WatchdogStallReport<S> {
  const report: WatchdogStallReport<S> = {
    durationMs: captured.durationMs,
    at: captured.at,
    stack: captured.stack,
    stackSource: captured.stackSource,
    inflight: 0,
  };
  let seen: { request?: S | null; inflight?: number; candidates?: S[] } | undefined;
  try {
    if (captured.scope !== undefined) seen = JSON.parse(captured.scope);
  } catch {
    // A scope that does not serialize is left out, not guessed.
  }
  // A late pause ran after the blocking work: its scope may belong to whatever ran next.
  if (seen?.request && captured.stackSource === 'pause') report.request = seen.request;
  report.inflight = seen?.inflight ?? here.inflight();
  if (!report.request) {
    const candidates = seen?.candidates ?? here.candidates();
    if (candidates.length > 0) report.candidates = candidates;
  }
  if (captured.pauseDelayMs !== undefined) report.pauseDelayMs = captured.pauseDelayMs;
  if (captured.stackSkipped !== undefined) report.stackSkipped = captured.stackSkipped;
  if (captured.debuggerAttached) report.debuggerAttached = true;
  return report;
}
