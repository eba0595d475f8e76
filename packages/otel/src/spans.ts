import type { PromiseReport, RequestScope, StallReport } from '@loopsight/core';
import {
  type Attributes,
  context,
  createContextKey,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  TraceFlags,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import {
  ATTR_CODE_COLUMN_NUMBER,
  ATTR_CODE_FILE_PATH,
  ATTR_CODE_FUNCTION_NAME,
  ATTR_CODE_LINE_NUMBER,
  ATTR_CODE_STACKTRACE,
  ATTR_CORRELATION_ID,
  ATTR_HTTP_ROUTE,
  ATTR_INFLIGHT,
  ATTR_PROMISE_AGE,
  ATTR_PROMISE_KIND,
  ATTR_STACK_SOURCE,
  ATTR_STALL_DURATION,
  ATTR_STALL_PHASE,
  EVENT_PROMISE,
  SPAN_PROMISE,
  SPAN_STALL,
} from './names.js';
import { formatStack } from './stack.js';

interface Tracked {
  /** The span itself, for the most recent requests (promise events need it while it is open). */
  readonly span: Span | undefined;
  readonly context: SpanContext;
}

/** Spans held for the latest requests; older ones are found by their context alone. */
const MAX_SPANS = 1000;

/**
 * The server span of each request, for the reports that arrive later: a stall is reported after
 * the loop unblocks, often after the response went out; a leaked promise seconds after. The
 * watchdog's reports carry a copy of the scope (it crossed a thread), so requests are found by
 * value: correlation id and start time.
 *
 * The hook runs on every request, the lookups once per report, so the request only writes into
 * fixed rings and the lookup scans them. A Map keyed by id, a WeakMap keyed by scope, or an object
 * per request each measured 0.5-1.5 µs more per request (GC of entries that outlive thousands of
 * requests); a scan of 10,000 slots is about 10 µs, once per stall.
 */
export class SpanTracker {
  readonly #ids: (string | undefined)[];
  readonly #startedAt: Float64Array;
  readonly #contexts: (SpanContext | undefined)[];
  readonly #spans: (Span | undefined)[];
  #count = 0;

  constructor(max: number) {
    this.#ids = new Array<string | undefined>(max);
    this.#startedAt = new Float64Array(max);
    this.#contexts = new Array<SpanContext | undefined>(max);
    this.#spans = new Array<Span | undefined>(Math.min(max, MAX_SPANS));
  }

  /** In the context that began the request: tags the request's span with the correlation id. */
  begin(scope: RequestScope): void {
    const span = serverSpan();
    if (span === undefined) return; // no tracing here: loopsight never invents a server span
    const context = span.spanContext();
    if (!isSpanContextValid(context) || (context.traceFlags & TraceFlags.SAMPLED) === 0) return;
    span.setAttribute(ATTR_CORRELATION_ID, scope.correlationId);
    const n = this.#count++;
    const slot = n % this.#ids.length;
    this.#ids[slot] = scope.correlationId;
    this.#startedAt[slot] = scope.startedAt;
    this.#contexts[slot] = context;
    this.#spans[n % this.#spans.length] = span;
  }

  /** The request of a report, newest first (a client may resend its correlation id). */
  find(scope: RequestScope): Tracked | undefined {
    const size = this.#ids.length;
    const seen = Math.min(this.#count, size);
    for (let back = 1; back <= seen; back++) {
      const n = this.#count - back;
      const slot = n % size;
      if (this.#startedAt[slot] !== scope.startedAt || this.#ids[slot] !== scope.correlationId) continue;
      const context = this.#contexts[slot];
      if (context === undefined) return undefined;
      const span = back <= this.#spans.length ? this.#spans[n % this.#spans.length] : undefined;
      return { span, context };
    }
    return undefined;
  }

  clear(): void {
    this.#ids.fill(undefined);
    this.#contexts.fill(undefined);
    this.#spans.fill(undefined);
    this.#count = 0;
  }
}

// OTel's HTTP instrumentation puts its server span in the context under this key (`setRPCMetadata`
// of @opentelemetry/core, a public API). Framework instrumentations make their middleware spans
// active around each middleware, loopsight's included: the active span there would be
// `middleware - …`, which ends at once. createContextKey is Symbol.for(description), so the key
// is the same across copies of the API.
const RPC_METADATA_KEY = createContextKey('OpenTelemetry SDK Context Key RPC_METADATA');

/** The HTTP server span of the request running now, else the active span (a job's own span). */
function serverSpan(): Span | undefined {
  const active = context.active();
  const rpc = active.getValue(RPC_METADATA_KEY) as { type?: unknown; span?: Span } | undefined;
  const span = rpc?.span;
  if (span !== undefined && typeof span.spanContext === 'function') return span;
  return trace.getSpan(active);
}

function codeAttributes(report: StallReport | PromiseReport): Attributes {
  const attributes: Attributes = {};
  if (report.stack.length === 0) return attributes;
  attributes[ATTR_CODE_STACKTRACE] = formatStack(report.stack);
  // The application's own frame, not Node's `get performance` above it. A late pause has none: what
  // ran after the blocker is never presented as the blocker's location.
  const { culprit } = report;
  if (culprit) {
    attributes[ATTR_CODE_FUNCTION_NAME] = culprit.functionName || '<anonymous>';
    attributes[ATTR_CODE_FILE_PATH] = culprit.url;
    attributes[ATTR_CODE_LINE_NUMBER] = culprit.line;
    attributes[ATTR_CODE_COLUMN_NUMBER] = culprit.column;
  }
  return attributes;
}

/**
 * A stall becomes a child span of the blocking request's server span, with the stall's real start
 * and end: trace views (Jaeger, Tempo) draw it as a bar inside the request, and it can be added
 * after the server span ended, which is the usual case (the report arrives once the loop is free).
 */
export function recordStall(tracer: Tracer, tracker: SpanTracker, report: StallReport): boolean {
  const scope = report.request;
  if (scope === undefined) return false; // unattributed: metrics only, never a guess
  const tracked = tracker.find(scope);
  if (tracked === undefined) return false;
  const attributes: Attributes = {
    [ATTR_STALL_DURATION]: report.durationMs,
    [ATTR_STACK_SOURCE]: report.stackSource,
    [ATTR_INFLIGHT]: report.inflight,
    [ATTR_CORRELATION_ID]: scope.correlationId,
    ...codeAttributes(report),
  };
  if (scope.route !== undefined) attributes[ATTR_HTTP_ROUTE] = scope.route;
  if (report.phase !== undefined) attributes[ATTR_STALL_PHASE] = report.phase;
  // The watchdog dates a stall from the last heartbeat before it, which can precede the request by
  // a few ms; the request cannot have blocked the loop before it began.
  const end = report.at + report.durationMs;
  const start = Math.min(end, Math.max(report.at, scope.startedAt));
  const parent = trace.setSpanContext(ROOT_CONTEXT, tracked.context);
  const span = tracer.startSpan(SPAN_STALL, { kind: SpanKind.INTERNAL, startTime: start, attributes }, parent);
  span.end(end);
  return true;
}

/**
 * A promise report becomes an event on the request's span while it is open; once it ended (a
 * leaked promise is reported `leakAfterMs` after its request), a child span from the promise's
 * creation to the report carries the same attributes, so the trace still shows it.
 */
export function recordPromise(tracer: Tracer, tracker: SpanTracker, report: PromiseReport): boolean {
  const scope = report.request;
  if (scope === undefined) return false;
  const tracked = tracker.find(scope);
  if (tracked === undefined) return false;
  const attributes: Attributes = {
    [ATTR_PROMISE_KIND]: report.kind,
    [ATTR_PROMISE_AGE]: report.ageMs,
    [ATTR_CORRELATION_ID]: scope.correlationId,
    ...codeAttributes(report),
  };
  const span = tracked.span;
  if (span?.isRecording()) {
    span.addEvent(EVENT_PROMISE, attributes);
    return true;
  }
  if (scope.route !== undefined) attributes[ATTR_HTTP_ROUTE] = scope.route;
  const now = Date.now();
  const parent = trace.setSpanContext(ROOT_CONTEXT, tracked.context);
  const child = tracer.startSpan(SPAN_PROMISE, { kind: SpanKind.INTERNAL, startTime: now - report.ageMs, attributes }, parent);
  child.end(now);
  return true;
}
