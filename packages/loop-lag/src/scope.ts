import type { StallWatchdogOptions } from './types.js';

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
