import type { IncomingMessage } from 'node:http';
import type { MonitorInternals } from './monitor.js';
import { generateId, idRefusal } from './options.js';
import type { RejectReason, ResolvedCorrelation } from './types.js';

const MAX_TRACEPARENT_LENGTH = 512;
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$/;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_PARENT_ID = '0'.repeat(16);

/** The trace id of a valid W3C traceparent header, or undefined. */
export function traceIdOf(traceparent: string): string | undefined {
  if (traceparent.length > MAX_TRACEPARENT_LENGTH) return undefined;
  const match = TRACEPARENT.exec(traceparent);
  if (!match) return undefined;
  const [, version, traceId, parentId, rest] = match;
  // Version ff is invalid; version 00 has exactly four fields; later versions may append more.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_PARENT_ID) return undefined;
  return traceId;
}

function occurrences(rawHeaders: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]?.toLowerCase() === name) n++;
  return n;
}

function refuse(
  value: string | string[],
  name: string,
  req: IncomingMessage,
  config: ResolvedCorrelation,
  monitor: MonitorInternals,
): RejectReason | undefined {
  if (typeof value !== 'string') return 'duplicate';
  // Node joins repeated headers with ', '; only then is it worth scanning rawHeaders.
  if (value.includes(',') && occurrences(req.rawHeaders, name) > 1) return 'duplicate';
  return idRefusal(value, config.validate, monitor);
}

/**
 * The correlation id of an incoming request: the first accepted header that validates, else the
 * trace id of a valid traceparent, else a fresh id. A refused value is counted, never returned.
 */
export function acceptIncoming(req: IncomingMessage, config: ResolvedCorrelation, monitor: MonitorInternals): string {
  let rejected: RejectReason | undefined;
  const { headers } = req;
  for (const name of config.accept) {
    const value = headers[name];
    if (value === undefined) continue;
    const reason = refuse(value, name, req, config, monitor);
    if (reason === undefined) {
      if (rejected !== undefined) monitor.rejected(rejected);
      return value as string;
    }
    rejected ??= reason;
  }
  // One count per request, for the first header refused.
  if (rejected !== undefined) monitor.rejected(rejected);
  if (config.traceparent) {
    const traceparent = headers.traceparent;
    if (typeof traceparent === 'string') {
      const traceId = traceIdOf(traceparent);
      if (traceId !== undefined) return traceId;
    }
  }
  return generateId(config, monitor);
}
