import { randomUUID } from 'node:crypto';
import { LOOP_LAG_DEFAULTS, LOOP_LAG_LIMITS } from '@loopsight/loop-lag';
import { boolean, checkKeys, custom, func, invalidOption, isPlainObject, oneOf, positive, type Shape, warning } from '@loopsight/options';
import { isUserFrame, resolvePromiseOptions } from '@loopsight/promises';
import type {
  BackpressureOptions,
  CorrelationOptions,
  LoopLagOptions,
  MonitorOptions,
  RejectReason,
  Report,
  ResolvedBackpressure,
  ResolvedCorrelation,
  ResolvedLoopLag,
  ResolvedOptions,
  ResolvedOutbound,
  ResolvedPromises,
  ResolvedShed,
  ShedInfo,
  ShedOptions,
  ShedResponse,
  StallReport,
} from './types.js';

/** 1-128 characters that are safe in a header, a log line and a metric exemplar. */
const DEFAULT_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** Longest id any validator is asked about: longer input is refused before validation. */
const MAX_ID_LENGTH = 1024;
// RFC 9110 token: what a header name may be.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/**
 * What every id must be, whatever `validate` says or wherever it came from: it is echoed, logged
 * and set on outbound requests, where a control character makes Node's http throw
 * ERR_INVALID_CHAR into the application and a character above U+00FF fails fetch.
 */
const SAFE_ID = /^[\x21-\x7e]+$/;
// Lengths above this are reported as too_long rather than invalid (the default accepts up to 128).
const LONG_ID = 128;

/**
 * Why an id is refused, or undefined when it may be used: a string of 1 to MAX_ID_LENGTH visible
 * ASCII characters that `validate` (when given) accepts. A throwing `validate` refuses the id.
 */
export function idRefusal(id: unknown, validate?: (id: string) => boolean, sink?: Pick<IdSink, 'reportError'>): RejectReason | undefined {
  if (typeof id !== 'string') return 'invalid';
  if (id.length > MAX_ID_LENGTH) return 'too_long';
  // The default pattern is stricter than SAFE_ID: one regexp per id on the request path.
  let ok = validate === DEFAULT_CORRELATION.validate || SAFE_ID.test(id);
  if (ok && validate !== undefined) {
    try {
      ok = validate(id) === true;
    } catch (error) {
      ok = false;
      sink?.reportError('options.correlation.validate threw', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'correlation.validate' }));
    }
  }
  if (ok) return undefined;
  return id.length > LONG_ID ? 'too_long' : 'invalid';
}

/** Where refused ids are counted and contained failures reported: the monitor. */
export interface IdSink {
  rejected(reason: RejectReason): void;
  reportError(what: string, error: unknown): void;
}

/**
 * A fresh id from `correlation.generate`. Its own output is held to the rules every id meets
 * (charset and length, not the `validate` of incoming ids: that describes what you accept, not what
 * you make); a refused or thrown one is replaced by a UUID and counted.
 */
export function generateId(config: ResolvedCorrelation, sink: IdSink): string {
  if (config.generate === randomUUID) return randomUUID();
  let id: unknown;
  try {
    id = config.generate();
  } catch (error) {
    sink.reportError('options.correlation.generate threw', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'correlation.generate' }));
    return randomUUID();
  }
  const reason = idRefusal(id);
  if (reason === undefined) return id as string;
  sink.rejected(reason);
  return randomUUID();
}

/**
 * The id of a scope opened with `candidate` (monitor.run): used when it passes the same checks as
 * an incoming header, else replaced by a generated one and counted. Never throws.
 */
export function scopeId(candidate: unknown, config: ResolvedCorrelation, sink: IdSink): string {
  if (candidate === undefined) return generateId(config, sink);
  const reason = idRefusal(candidate, config.validate, sink);
  if (reason === undefined) return candidate as string;
  sink.rejected(reason);
  return generateId(config, sink);
}

const CAPTURE = oneOf(['auto', 'native', 'inspector'] as const, 'auto');

const DEFAULT_LOOP_LAG: ResolvedLoopLag = Object.freeze({
  resolutionMs: LOOP_LAG_DEFAULTS.resolutionMs,
  stallThresholdMs: LOOP_LAG_DEFAULTS.thresholdMs,
  captureStacks: LOOP_LAG_DEFAULTS.captureStacks,
  windowMs: 10_000,
  maxStacksPerMinute: LOOP_LAG_DEFAULTS.maxStacksPerMinute,
  profiler: false,
  expected: undefined,
  capture: 'auto',
});

/** The tracker's defaults, which the promises package defines: the monitor tells its default frameFilter by them. */
export const DEFAULT_PROMISES: ResolvedPromises = resolvePromiseOptions(undefined);

const DEFAULT_CORRELATION: ResolvedCorrelation = Object.freeze({
  header: 'x-request-id',
  accept: Object.freeze(['x-request-id', 'x-correlation-id']),
  traceparent: true,
  validate: (id: string) => DEFAULT_ID_PATTERN.test(id),
  generate: randomUUID,
  echo: true,
  propagate: true,
});

const DEFAULT_MAX_INFLIGHT = 10_000;

function positiveAt(path: string, value: unknown, fallback: number, { integer = false, max = Number.MAX_SAFE_INTEGER } = {}): number {
  return positive({ integer, max, default: fallback }).resolve(value, path);
}

const bool = (path: string, value: unknown, fallback: boolean): boolean => boolean(fallback).resolve(value, path);

const fn = <T>(path: string, value: unknown, fallback: T): T => func<T, T>(fallback).resolve(value, path);

/**
 * Never a correlation header: `header` is echoed on every response and set on every outbound
 * request, and `accept` is echoed and logged. Credentials would leak, framing and hop-by-hop headers
 * would break the message, and trace context would be overwritten with an id.
 */
const REFUSED_HEADERS = Object.freeze([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'www-authenticate',
  'proxy-authenticate',
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'transfer-encoding',
  'te',
  'trailer',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'expect',
  'location',
  'traceparent',
  'tracestate',
]);

function headerName(path: string, value: unknown): string {
  if (typeof value !== 'string' || !HEADER_NAME.test(value)) invalidOption(path, 'an HTTP header name (RFC 9110 token)', value);
  const name = value.toLowerCase();
  if (REFUSED_HEADERS.includes(name)) {
    invalidOption(
      path,
      `a header name other than ${REFUSED_HEADERS.join(', ')} (credential, framing, hop-by-hop and trace headers)`,
      value,
    );
  }
  return name;
}

function resolveLoopLag(value: unknown): ResolvedLoopLag | false {
  if (value === false) return false;
  if (value === undefined) return DEFAULT_LOOP_LAG;
  if (!isPlainObject(value)) invalidOption('loopLag', 'an object or false', value);
  const o = value as LoopLagOptions & Record<string, unknown>;
  checkKeys('loopLag', o, [
    'resolutionMs',
    'stallThresholdMs',
    'captureStacks',
    'windowMs',
    'maxStacksPerMinute',
    'profiler',
    'expected',
    'capture',
  ]);
  const resolutionMs = positiveAt('loopLag.resolutionMs', o.resolutionMs, DEFAULT_LOOP_LAG.resolutionMs, {
    integer: true,
    max: LOOP_LAG_LIMITS.resolutionMs.max,
  });
  const windowMs = positiveAt('loopLag.windowMs', o.windowMs, DEFAULT_LOOP_LAG.windowMs, { integer: true, max: 3_600_000 });
  if (windowMs < resolutionMs * 10)
    invalidOption('loopLag.windowMs', `at least 10 × loopLag.resolutionMs (${resolutionMs * 10})`, windowMs);
  return Object.freeze({
    resolutionMs,
    stallThresholdMs: stallThreshold(o.stallThresholdMs),
    captureStacks: bool('loopLag.captureStacks', o.captureStacks, DEFAULT_LOOP_LAG.captureStacks),
    windowMs,
    maxStacksPerMinute: positiveAt('loopLag.maxStacksPerMinute', o.maxStacksPerMinute, DEFAULT_LOOP_LAG.maxStacksPerMinute, {
      integer: true,
      max: LOOP_LAG_LIMITS.maxStacksPerMinute.max,
    }),
    profiler: resolveProfiler(o.profiler),
    expected: resolveExpected(o.expected),
    capture: CAPTURE.resolve(o.capture, 'loopLag.capture'),
  });
}

function resolveExpected(value: unknown): ResolvedLoopLag['expected'] {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) invalidOption('loopLag.expected', 'an object { routes?, when? }', value);
  checkKeys('loopLag.expected', value, ['routes', 'when']);
  const { routes = [], when } = value as { routes?: unknown; when?: unknown };
  if (!Array.isArray(routes) || routes.length > 100 || !routes.every((r) => typeof r === 'string' && r.startsWith('/'))) {
    invalidOption('loopLag.expected.routes', 'an array of at most 100 route templates starting with /', routes);
  }
  if (when !== undefined && typeof when !== 'function') invalidOption('loopLag.expected.when', 'a function (report) => boolean', when);
  return Object.freeze({ routes: new Set(routes as string[]), when: when as ((report: StallReport) => boolean) | undefined });
}

function stallThreshold(value: unknown): number {
  const { min, max } = LOOP_LAG_LIMITS.thresholdMs;
  const ms = positiveAt('loopLag.stallThresholdMs', value, DEFAULT_LOOP_LAG.stallThresholdMs, { max });
  if (ms < min) invalidOption('loopLag.stallThresholdMs', `a number of ms from ${min} to ${max}`, value);
  return ms;
}

function resolveProfiler(value: unknown): ResolvedLoopLag['profiler'] {
  if (value === undefined) return DEFAULT_LOOP_LAG.profiler;
  if (value === false) return false;
  if (value === true) return Object.freeze({ intervalMs: LOOP_LAG_DEFAULTS.profilerIntervalMs });
  if (!isPlainObject(value)) invalidOption('loopLag.profiler', 'a boolean or { intervalMs }', value);
  checkKeys('loopLag.profiler', value, ['intervalMs']);
  return Object.freeze({
    intervalMs: positiveAt('loopLag.profiler.intervalMs', value.intervalMs, LOOP_LAG_DEFAULTS.profilerIntervalMs, {
      integer: true,
      max: LOOP_LAG_LIMITS.profilerIntervalMs.max,
    }),
  });
}

function resolvePromises(value: unknown): ResolvedPromises | false {
  if (value === false) return false;
  if (value === undefined) return DEFAULT_PROMISES;
  if (!isPlainObject(value)) invalidOption('promises', 'an object or false', value);
  // The promises package owns these options: their defaults, limits and messages.
  return resolvePromiseOptions(value, 'promises.');
}

function resolveValidate(value: unknown): (id: string) => boolean {
  if (value === undefined) return DEFAULT_CORRELATION.validate;
  if (value instanceof RegExp) {
    // A global or sticky regexp keeps lastIndex between calls and would accept every other id.
    const re = new RegExp(value.source, value.flags.replace(/[gy]/g, ''));
    return (id) => re.test(id);
  }
  return fn('correlation.validate', value, DEFAULT_CORRELATION.validate);
}

function resolveCorrelation(value: unknown): ResolvedCorrelation {
  if (value === undefined) return DEFAULT_CORRELATION;
  if (!isPlainObject(value)) invalidOption('correlation', 'an object', value);
  const o = value as CorrelationOptions & Record<string, unknown>;
  checkKeys('correlation', o, ['header', 'accept', 'traceparent', 'validate', 'generate', 'echo', 'propagate']);
  let accept = DEFAULT_CORRELATION.accept;
  if (o.accept !== undefined) {
    if (!Array.isArray(o.accept)) invalidOption('correlation.accept', 'an array of header names', o.accept);
    accept = Object.freeze(o.accept.map((h: unknown, i: number) => headerName(`correlation.accept[${i}]`, h)));
  }
  return Object.freeze({
    header: o.header === undefined ? DEFAULT_CORRELATION.header : headerName('correlation.header', o.header),
    accept,
    // `accept: []` means "trust no incoming id": a traceparent is incoming too, unless asked for.
    traceparent: bool('correlation.traceparent', o.traceparent, accept.length > 0),
    validate: resolveValidate(o.validate),
    generate: fn('correlation.generate', o.generate, DEFAULT_CORRELATION.generate),
    echo: bool('correlation.echo', o.echo, DEFAULT_CORRELATION.echo),
    propagate: bool('correlation.propagate', o.propagate, DEFAULT_CORRELATION.propagate),
  });
}

function resolveExporters(value: unknown): ResolvedOptions['exporters'] {
  if (value === undefined) return Object.freeze([]);
  if (!Array.isArray(value)) invalidOption('exporters', 'an array of exporters', value);
  value.forEach((e: unknown, i: number) => {
    const candidate = e as { name?: unknown; start?: unknown; stop?: unknown };
    if (!isPlainObject(e) || typeof candidate.name !== 'string' || typeof candidate.start !== 'function') {
      invalidOption(`exporters[${i}]`, 'an exporter ({ name: string, start(monitor), stop?() })', e);
    }
    if (candidate.stop !== undefined && typeof candidate.stop !== 'function')
      invalidOption(`exporters[${i}].stop`, 'a function', candidate.stop);
  });
  return Object.freeze([...value]);
}

/** The default report sink: one JSON line on stderr, so log shippers pick it up as a structured event. */
export function writeReportLine(report: Report): void {
  process.stderr.write(`${JSON.stringify({ loopsight: report.type, culprit: report.culprit, ...report })}\n`);
}

/** The logger a monitor has unless given one: its warnings go out with their codes (process.emitWarning). */
export const defaultLogger = {
  warn(message: string): void {
    process.emitWarning(message, { code: 'LOOPSIGHT_WARNING' });
  },
};

const SHED_LIMITS = ['maxEventLoopDelayMs', 'maxEventLoopUtilization', 'maxHeapUsedBytes'] as const;

function resolveShed(value: unknown): ResolvedShed | false {
  if (value === undefined || value === false) return false;
  if (!isPlainObject(value)) invalidOption('shed', 'an object such as { maxEventLoopDelayMs: 200 }', value);
  const o = value as ShedOptions & Record<string, unknown>;
  checkKeys('shed', o, [...SHED_LIMITS, 'retryAfterSeconds', 'sampleIntervalMs', 'exempt', 'onShed', 'response']);
  if (SHED_LIMITS.every((k) => o[k] === undefined))
    invalidOption('shed', `an object that sets at least one of ${SHED_LIMITS.join(', ')}`, value);
  const maxUtilization = o.maxEventLoopUtilization;
  if (maxUtilization !== undefined && !(typeof maxUtilization === 'number' && maxUtilization > 0 && maxUtilization <= 1)) {
    invalidOption('shed.maxEventLoopUtilization', 'a number in (0, 1]', maxUtilization);
  }
  const optional = (path: (typeof SHED_LIMITS)[number], opts: { integer?: boolean; max?: number }) =>
    o[path] === undefined ? undefined : positiveAt(`shed.${path}`, o[path], 0, opts);
  const response = o.response;
  if (response !== undefined) {
    if (!isPlainObject(response)) invalidOption('shed.response', 'an object { status?, body? }', response);
    checkKeys('shed.response', response, ['status', 'body']);
  }
  const status: unknown = response?.status ?? 503;
  if (!(typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599)) {
    invalidOption('shed.response.status', 'an HTTP status from 400 to 599', status);
  }
  const body = response?.body;
  if (body !== undefined && typeof body !== 'string' && !isPlainObject(body))
    invalidOption('shed.response.body', 'a string or an object', body);
  return Object.freeze({
    maxEventLoopDelayMs: optional('maxEventLoopDelayMs', { max: 60_000 }),
    maxEventLoopUtilization: maxUtilization,
    maxHeapUsedBytes: optional('maxHeapUsedBytes', { integer: true }),
    retryAfterSeconds: positiveAt('shed.retryAfterSeconds', o.retryAfterSeconds, 10, { integer: true, max: 86_400 }),
    sampleIntervalMs: positiveAt('shed.sampleIntervalMs', o.sampleIntervalMs, 500, { integer: true, max: 60_000 }),
    exempt: resolveExempt(o.exempt),
    onShed: o.onShed === undefined ? undefined : fn<(info: ShedInfo) => void>('shed.onShed', o.onShed, () => {}),
    status,
    body: shedBody(body),
  });
}

function resolveExempt(value: unknown): ResolvedShed['exempt'] {
  if (value === undefined) return () => false;
  if (typeof value === 'function') return (req) => (value as (r: typeof req) => boolean)(req) === true;
  if (!Array.isArray(value)) invalidOption('shed.exempt', 'an array of paths and regexps, or a function (req) => boolean', value);
  const paths = new Set<string>();
  const patterns: RegExp[] = [];
  value.forEach((entry: unknown, i) => {
    if (typeof entry === 'string') paths.add(entry);
    // Without g/y: a stateful regexp would exempt every other request.
    else if (entry instanceof RegExp) patterns.push(new RegExp(entry.source, entry.flags.replace(/[gy]/g, '')));
    else invalidOption(`shed.exempt[${i}]`, 'a path string or a RegExp', entry);
  });
  return (_req, path) => paths.has(path) || patterns.some((re) => re.test(path));
}

function shedBody(body: ShedResponse['body']): ResolvedShed['body'] {
  if (typeof body === 'string') {
    const fixed = { type: 'text/plain; charset=utf-8', text: body };
    return () => fixed;
  }
  const json = 'application/json; charset=utf-8';
  if (body !== undefined) {
    const fixed = { type: json, text: JSON.stringify(body) };
    return () => fixed;
  }
  const byReason = new Map<string, { type: string; text: string }>();
  return (reason) => {
    let entry = byReason.get(reason);
    if (!entry) {
      entry = { type: json, text: JSON.stringify({ error: 'overloaded', reason }) };
      byReason.set(reason, entry);
    }
    return entry;
  };
}

/** The `backpressure` option's defaults (docs/backpressure.md). */
const DEFAULT_BACKPRESSURE: ResolvedBackpressure = Object.freeze({
  highWaterMarks: 16,
  minBytes: 1_048_576,
  slowConsumerMs: 5_000,
  maxTracked: 1_000,
});

function resolveBackpressure(value: unknown): ResolvedBackpressure | false {
  if (value === false) return false;
  if (value === undefined) return DEFAULT_BACKPRESSURE;
  if (!isPlainObject(value)) invalidOption('backpressure', 'an object or false', value);
  const o = value as BackpressureOptions & Record<string, unknown>;
  checkKeys('backpressure', o, ['highWaterMarks', 'minBytes', 'slowConsumerMs', 'maxTracked']);
  const d = DEFAULT_BACKPRESSURE;
  const highWaterMarks = positiveAt('backpressure.highWaterMarks', o.highWaterMarks, d.highWaterMarks, { max: 1_000_000 });
  // Below 2 a writer that honours backpressure (one chunk past the mark) would count as ignoring it.
  if (highWaterMarks < 2) invalidOption('backpressure.highWaterMarks', 'a number from 2 to 1000000', o.highWaterMarks);
  return Object.freeze({
    highWaterMarks,
    minBytes: positiveAt('backpressure.minBytes', o.minBytes, d.minBytes, { integer: true }),
    slowConsumerMs: positiveAt('backpressure.slowConsumerMs', o.slowConsumerMs, d.slowConsumerMs, { integer: true, max: 3_600_000 }),
    maxTracked: positiveAt('backpressure.maxTracked', o.maxTracked, d.maxTracked, { integer: true, max: 1_000_000 }),
  });
}

/** Distinct origins of the outbound queue-wait metric by default; the rest are counted as `__other__`. */
const DEFAULT_MAX_ORIGINS = 100;

const DEFAULT_OUTBOUND: ResolvedOutbound = Object.freeze({ maxOrigins: DEFAULT_MAX_ORIGINS });

function resolveOutbound(value: unknown): ResolvedOutbound | false {
  if (value === false) return false;
  if (value === undefined) return DEFAULT_OUTBOUND;
  if (!isPlainObject(value)) invalidOption('outbound', 'an object { maxOrigins? } or false', value);
  checkKeys('outbound', value, ['maxOrigins']);
  return Object.freeze({
    maxOrigins: positiveAt('outbound.maxOrigins', value.maxOrigins, DEFAULT_MAX_ORIGINS, { integer: true, max: 10_000 }),
  });
}

/** Every top-level monitor option. */
export const TOP_LEVEL = [
  'loopLag',
  'promises',
  'correlation',
  'exporters',
  'onReport',
  'maxInflight',
  'logger',
  'bindEmitters',
  'shed',
  'frameFilter',
  'backpressure',
  'outbound',
] as const;

/** Merges defaults once and validates everything; the result is frozen and passed down as is. */
export function resolveOptions(options: MonitorOptions | undefined): ResolvedOptions {
  if (options === undefined) options = {};
  if (!isPlainObject(options)) invalidOption('', 'an object', options);
  const o = options as MonitorOptions & Record<string, unknown>;
  checkKeys('', o, TOP_LEVEL);
  let logger = defaultLogger;
  if (o.logger !== undefined) {
    if (!isPlainObject(o.logger) || typeof o.logger.warn !== 'function')
      invalidOption('logger', 'an object with a warn(message) method', o.logger);
    logger = o.logger;
  }
  const frameFilter = o.frameFilter === undefined ? undefined : fn('frameFilter', o.frameFilter, isUserFrame);
  return Object.freeze({
    loopLag: resolveLoopLag(o.loopLag),
    // The monitor's frameFilter is the tracker's too, unless promises.frameFilter says otherwise.
    promises: resolvePromises(
      frameFilter && isPlainObject(o.promises) && o.promises.frameFilter === undefined
        ? { ...o.promises, frameFilter }
        : o.promises === undefined && frameFilter
          ? { frameFilter }
          : o.promises,
    ),
    correlation: resolveCorrelation(o.correlation),
    exporters: resolveExporters(o.exporters),
    onReport: fn('onReport', o.onReport, writeReportLine),
    maxInflight: positiveAt('maxInflight', o.maxInflight, DEFAULT_MAX_INFLIGHT, { integer: true, max: 1_000_000 }),
    logger,
    bindEmitters: bool('bindEmitters', o.bindEmitters, false),
    shed: resolveShed(o.shed),
    frameFilter: frameFilter ?? isUserFrame,
    backpressure: resolveBackpressure(o.backpressure),
    outbound: resolveOutbound(o.outbound),
  });
}

/**
 * The rules of the options `@loopsight/register` sets from LOOPSIGHT_* variables, by option path:
 * the preload checks each variable by the rule `createMonitor` applies to its option.
 */
export const OPTION_RULES = Object.freeze({
  'loopLag.stallThresholdMs': custom(
    `a number of ms from ${LOOP_LAG_LIMITS.thresholdMs.min} to ${LOOP_LAG_LIMITS.thresholdMs.max}`,
    (value) => stallThreshold(value),
  ),
  'loopLag.captureStacks': boolean(),
  'promises.mode': oneOf(['off', 'sampled', 'full'] as const),
  'correlation.header': custom('an HTTP header name (RFC 9110 token)', (value, path) => headerName(path, value)),
  'correlation.echo': boolean(),
  'correlation.propagate': boolean(),
} satisfies Shape);
