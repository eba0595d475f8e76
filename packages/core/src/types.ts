import type { IncomingMessage } from 'node:http';
import type {
  GuardState,
  ProfilerOptions,
  RequestSource,
  ShedReason,
  StallWatchdogOptions,
  WatchdogStallReport,
} from '@loopsight/loop-lag';

export type { RequestSource };

import type { PromiseOptions, PromiseTrackerStats, ResolvedPromiseOptions, TrackedPromiseReport } from '@loopsight/promises';

export type { PromiseOptions, ShedReason };

/**
 * The request (or job) that is running. Lives in one AsyncLocalStorage for the whole process and
 * follows every async hop: timers, promises, I/O callbacks, bound event emitters.
 */
export interface RequestScope {
  /** Accepted from an incoming header, or generated. */
  correlationId: string;
  method?: string | undefined;
  /** Route template (`/users/:id`), never the raw path. Resolved lazily: frameworks learn it only after routing. */
  route?: string | undefined;
  /** Epoch milliseconds. */
  startedAt: number;
}

/** A stack frame as loopsight reports it: source-mapped when the script has a source map. */
export interface StackFrame {
  functionName: string;
  url: string;
  line: number;
  column: number;
  /** Where the frame is in the code that ran, when `url`, `line` and `column` come from a source map. */
  generated?: { url: string; line: number; column: number };
}

/**
 * A loop blocked for at least `loopLag.stallThresholdMs`: the stall watchdog's report (fields in
 * @loopsight/loop-lag and docs/loop-lag.md), for a request scope, with what core adds.
 */
export interface StallReport extends WatchdogStallReport<RequestScope> {
  type: 'stall';
  /**
   * The application's own frame nearest the top of the stack (see `frameFilter`): the line to read
   * first. From a late pause, the first one below its top frame (the top may have run after the
   * blocker; the frames below it were on the stack before the pause was asked); none when the
   * stack has no application frame there.
   */
  culprit?: StackFrame;
  /**
   * `'startup'`: the stall began before the process served: before the first `listen()` of an
   * HTTP server, with `@loopsight/register` (module loading, warm-up). Counted under the route
   * label `__startup__`, written by no default report line. Absent for every other stall.
   */
  phase?: 'startup';
}

/**
 * A floating, leaked or unhandled promise: the promise tracker's report, with the request or job
 * that created it and the culprit frame. Fields are explained in docs/promises.md.
 */
export interface PromiseReport extends TrackedPromiseReport<RequestScope> {
  /** The application's own frame that created the promise (see `frameFilter`; never loopsight's). */
  culprit?: StackFrame;
}

/**
 * A writer that ignored backpressure, or whose reader cannot keep up (docs/backpressure.md):
 * an HTTP response or a WebSocket connection whose buffered bytes passed the bound
 * (`backpressure.highWaterMarks` × its high-water mark, at least `backpressure.minBytes`).
 */
export interface BackpressureReport {
  /** Always `'backpressure'`: what tells it from the other reports `onReport` receives. */
  type: 'backpressure';
  /**
   * `ignored`: the writer wrote again after `write()` returned false (or, for a WebSocket, after
   * its socket asked to wait), before 'drain', and the buffer passed the bound.
   * `slow-consumer`: the buffer stayed above the bound for `backpressure.slowConsumerMs` or longer.
   */
  kind: 'ignored' | 'slow-consumer';
  /** Bytes buffered in memory by the writer when the report was made. */
  bufferedBytes: number;
  /** The writer's high-water mark, bytes (`writableHighWaterMark`). */
  highWaterMark: number;
  /** `ignored`: the application's own frame of the write that crossed the bound (see `frameFilter`). */
  culprit?: StackFrame;
  /** `ignored`: the frames of that write, the application's own first (at most 10). */
  stack?: StackFrame[];
  /** The request, or the WebSocket connection's message scope (`method: 'WS'`), that was writing. */
  request?: RequestScope;
  /** `slow-consumer`: how long the buffer has stayed above the bound, ms. */
  durationMs?: number;
  /** Reports of the same site and kind left out since the previous one (one per site and kind a minute). */
  suppressed: number;
}

export type Report = StallReport | PromiseReport | BackpressureReport;

/** Emitted once per request or `monitor.run()` job when it ends. */
export interface RequestRecord {
  type: 'request';
  correlationId: string;
  method?: string | undefined;
  route?: string | undefined;
  /** HTTP status code; absent for `monitor.run()` jobs. */
  status?: number;
  /** The client went away before the response finished, or a job threw or rejected. */
  aborted: boolean;
  startedAt: number;
  durationMs: number;
}

/** Event loop statistics over the last complete window (see `loopLag.windowMs`). Times in ms. */
export interface LoopStats {
  /** Delay beyond the sampling resolution, so an idle loop reads close to 0. */
  min: number;
  max: number;
  mean: number;
  stddev: number;
  p50: number;
  p90: number;
  p99: number;
  /** Event loop utilization, 0..1, over the same window. */
  utilization: number;
  /** Number of delay samples in the window. */
  count: number;
  /** Length of the window the figures cover. */
  windowMs: number;
}

/**
 * Loop delay samples since the monitor started, up to the last complete window: cumulative counts
 * per upper bound, ready to become Prometheus buckets (aggregatable across instances) or an OTel histogram.
 */
export interface LoopDelayHistogram {
  /** Upper bounds, ms, ascending. */
  readonly boundsMs: readonly number[];
  /** `counts[i]` = samples with a delay ≤ `boundsMs[i]` (cumulative). */
  readonly counts: readonly number[];
  /** All samples (the +Inf bucket). */
  readonly count: number;
  /** Sum of all delays, ms. */
  readonly sumMs: number;
}

/** Why an incoming correlation id was refused and replaced. */
export type RejectReason = 'too_long' | 'invalid' | 'duplicate';

/** Counters kept by the monitor, read by exporters at scrape time. */
export interface MonitorCounters {
  /** Incoming correlation ids refused, by reason. */
  correlationIdsRejected: Record<RejectReason, number>;
  /** Requests not tracked in the in-flight registry because it was full. */
  inflightDropped: number;
  /** Failures inside loopsight that were contained (listener, exporter, header handling). */
  internalErrors: number;
  /** The promise tracker's counters: tracked now, the cap, dropped, reported and suppressed by kind. Absent when promises are off. */
  promises?: PromiseTrackerStats;
  /** Requests answered 503 by the overload guard, by reason. Absent without the `shed` option. */
  shed?: Record<ShedReason, number>;
  /**
   * Long-lived connections (WebSocket, through `@loopsight/ws`): opened and closed since the monitor
   * was created, and open now. Absent until an adapter that counts connections is mounted.
   */
  connections?: ConnectionCounts;
  /** Writers watched for backpressure (`backpressure` option). Absent when it is off. */
  backpressure?: BackpressureCounts;
}

/** What the backpressure watch counts (`monitor.counters().backpressure`). */
export interface BackpressureCounts {
  /** Bytes buffered now by the writers waiting for 'drain' (those whose last write was told to wait). */
  bufferedBytes: number;
  /** Writers waiting for 'drain' now. */
  waiting: number;
  /** Writers not watched because `backpressure.maxTracked` were watched already. */
  dropped: number;
  /** Reports made, by kind. */
  reported: { ignored: number; slowConsumer: number };
  /** Reports left out by the once-per-site-per-minute rule. */
  suppressed: number;
}

/** Connections an adapter of long-lived connections counted (`monitor.counters().connections`). */
export interface ConnectionCounts {
  /** Connections opened since the monitor was created. */
  opened: number;
  /** Connections closed since the monitor was created. */
  closed: number;
  /** Connections open now: `opened - closed`. */
  open: number;
}

/** What `monitor.health()` returns: for readiness probes. */
export type Health = GuardState;

/**
 * An exporter (or any component whose lifecycle follows the monitor's): `start` runs on
 * `monitor.start()` (or at once when the monitor already runs), `stop` on `monitor.stop()`.
 * Write one by listening to the monitor's events and reading its stats; see docs/architecture.md.
 */
export interface Exporter {
  readonly name: string;
  start(monitor: Monitor): void;
  stop?(): void | Promise<void>;
}

/**
 * One per service, or one shared by every app of a process. Holds the in-flight registry and the
 * components attached to it (exporters); emits 'request', 'stall' and 'promise'. Made by
 * `createMonitor()`, or by an adapter for you.
 */
export interface Monitor {
  /** Starts the monitor and its exporters. Idempotent; adapters call it. */
  start(): void;
  /** Stops the exporters and releases the process's shared parts once no monitor needs them. Idempotent. */
  stop(): Promise<void>;
  /** Whether start() was called and stop() was not. */
  readonly running: boolean;
  on(event: 'stall', fn: (r: StallReport) => void): this;
  on(event: 'promise', fn: (r: PromiseReport) => void): this;
  on(event: 'request', fn: (r: RequestRecord) => void): this;
  on(event: 'backpressure', fn: (r: BackpressureReport) => void): this;
  off(event: 'stall' | 'promise' | 'request' | 'backpressure', fn: (r: never) => void): this;
  /** Loop delay (beyond the sampling resolution) and utilization over the last complete window, in ms. */
  loopStats(): LoopStats;
  /** Delay samples since start() in cumulative buckets (1 ms to 10 s), up to the last complete window. */
  loopDelayHistogram(): LoopDelayHistogram;
  /** For readiness probes: 'overloaded' while the `shed` option's guard sheds load. Without `shed`, always 'ok'. */
  health(): Health;
  /** The requests and jobs running now, oldest first (at most `maxInflight` of them are tracked). */
  inflight(): RequestScope[];
  /** A copy of the monitor's counters. */
  counters(): MonitorCounters;
  /**
   * Runs non-HTTP work (a queue consumer, a cron job) as a tracked scope: it gets a correlation id,
   * shows in `inflight()` and emits 'request' when `fn` returns or its promise settles.
   */
  run<T>(scope: Partial<RequestScope>, fn: () => T): T;
  /**
   * Ties an exporter's lifecycle to this monitor: started now if the monitor runs, else on start();
   * stopped on stop(). One with the same name as one attached already is ignored.
   */
  attach(exporter: Exporter): this;
  /**
   * Counts a contained failure and warns once per kind: for exporters, which must never throw into
   * the service. The kind is the code and site of an `error` made with `warning(code, cause,
   * { site })` from `@loopsight/options` (docs/errors.md), else `what`.
   */
  reportError(what: string, error: unknown): void;
}

/**
 * The stall watchdog's options (`captureStacks`, `maxStacksPerMinute`, `profiler`; `stallThresholdMs`
 * is its `thresholdMs`) and the loop delay sampler's. Defaults and ranges: @loopsight/loop-lag's
 * LOOP_LAG_DEFAULTS and LOOP_LAG_LIMITS.
 */
export interface LoopLagOptions extends Pick<StallWatchdogOptions<RequestScope>, 'captureStacks' | 'maxStacksPerMinute' | 'capture'> {
  /** Sampling resolution of the delay histogram, ms: an integer up to 1000. Default 10. */
  resolutionMs?: number;
  /** A loop blocked at least this long is a stall, ms: from 10 to 3,600,000. Default 100. */
  stallThresholdMs?: number;
  /** Length of the window `loopStats()` covers, ms: at least 10 × `resolutionMs`. Default 10000. */
  windowMs?: number;
  /**
   * A sampling profiler on the main thread, so that stalls spent inside native code (JSON.parse of a
   * large body) still get the stack that called it. `true` samples every 10 ms. Default false.
   */
  profiler?: boolean | ProfilerOptions;
  /**
   * Stalls that are known and accepted, besides those inside `expectBlocking()`: of requests on
   * these route templates, or for which `when` returns true. Counted and timed, marked `expected`,
   * with no stack and no report line. The pause that tells which request was running still
   * happens (within `maxStacksPerMinute`); its stack is dropped.
   */
  expected?: ExpectedStalls;
}

/** Which stalls are expected: see `loopLag.expected`. */
export interface ExpectedStalls {
  /** Route templates, as in reports (`/reports/:id/pdf`). At most 100. */
  routes?: readonly string[];
  /** Called with the report before it goes out; a throwing predicate counts as false. */
  when?: (report: StallReport) => boolean;
}

export interface CorrelationOptions {
  /** Header echoed on responses and set on outbound requests. Default 'x-request-id'. */
  header?: string;
  /** Incoming headers looked at, in order. Default ['x-request-id', 'x-correlation-id']. */
  accept?: readonly string[];
  /** Fall back to the trace id of a valid W3C `traceparent`. Default true. */
  traceparent?: boolean;
  /** Accept an incoming id. Default: 1-128 characters of [A-Za-z0-9._:-]. */
  validate?: RegExp | ((id: string) => boolean);
  /** Make a fresh id. Default `crypto.randomUUID`. */
  generate?: () => string;
  /** Set `header` on every response. Default true. */
  echo?: boolean;
  /** Set `header` on outbound fetch/undici/http(s) requests made inside a scope. Default true. */
  propagate?: boolean;
}

export interface Logger {
  warn(message: string): void;
}

export interface MonitorOptions {
  loopLag?: LoopLagOptions | false;
  promises?: PromiseOptions | false;
  correlation?: CorrelationOptions;
  exporters?: readonly Exporter[];
  /** Where stall, promise and backpressure reports go. Default: one JSON line on stderr. */
  onReport?: (report: Report) => void;
  /**
   * Ignored backpressure and slow consumers of HTTP responses and WebSocket connections, and the
   * time writers wait for 'drain' (docs/backpressure.md). On by default; `false` turns it off.
   */
  backpressure?: BackpressureOptions | false;
  /** Cap of the in-flight registry. Default 10000. */
  maxInflight?: number;
  /** Where loopsight's own warnings go (each at most once). Default: `process.emitWarning`. */
  logger?: Logger;
  /**
   * Run every listener on the request and response in the request's scope, for code that reads the
   * id inside its own `req.on('data')` or `res.on('finish')`. Default false: body parsers keep
   * the scope by themselves, and binding costs about 2% CPU per request.
   */
  bindEmitters?: boolean;
  /** Answer 503 + Retry-After while the process is overloaded. Off unless set. See docs/shed.md. */
  shed?: ShedOptions;
  /**
   * Whether a frame, by its script URL, is the application's own: a report's `culprit` is the
   * first such frame (loopsight's own frames never are). Also the default of
   * `promises.frameFilter`. Default `isUserFrame`: not `node:`, not in node_modules.
   *
   * @example
   * createMonitor({ frameFilter: (url) => isUserFrame(url) || url.includes('/node_modules/@acme/') });
   */
  frameFilter?: (url: string) => boolean;
  /**
   * How long `fetch()` calls wait for a connection of their dispatcher's pool, per origin: the
   * exporters' `loopsight_outbound_queue_wait_seconds`. On by default; `false` turns it off.
   * See docs/outbound.md.
   */
  outbound?: OutboundOptions | false;
}

/** The `outbound` monitor option: fetch() waits for a pool connection, by origin (docs/outbound.md). */
export interface OutboundOptions {
  /**
   * Distinct origins labelled; later ones are counted under `__other__`, so a service that calls
   * many hosts keeps a bounded series count. Default 100.
   */
  maxOrigins?: number;
}

/** The `outbound` option after defaults. */
export interface ResolvedOutbound {
  /** Distinct origins labelled before the rest count as `__other__`. */
  readonly maxOrigins: number;
}

/** The `backpressure` option: when a writer's buffer counts as too full, and for how long is too long. */
export interface BackpressureOptions {
  /** The bound is this many times the writer's high-water mark… Default 16. */
  highWaterMarks?: number;
  /** …and at least this many bytes. Default 1048576 (1 MiB). */
  minBytes?: number;
  /** A buffer above the bound this long, ms, is a slow consumer. Default 5000. */
  slowConsumerMs?: number;
  /** Writers watched at once (those told to wait for 'drain'); past it, new ones are not watched. Default 1000. */
  maxTracked?: number;
}

export interface ResolvedBackpressure {
  readonly highWaterMarks: number;
  readonly minBytes: number;
  readonly slowConsumerMs: number;
  readonly maxTracked: number;
}

/** What a shed request is told. */
export interface ShedResponse {
  /** Default 503. */
  status?: number;
  /** Default `{ "error": "overloaded", "reason": … }`. A string is sent as is, an object as JSON. */
  body?: string | Record<string, unknown>;
}

export interface ShedInfo {
  reason: ShedReason;
  method: string;
  path: string;
  correlationId: string;
}

export interface ShedOptions {
  /** Shed while the loop delay over a sample interval (p90 or time-weighted mean, the higher) exceeds this, ms. */
  maxEventLoopDelayMs?: number;
  /** Shed while the loop's utilization over a sample interval exceeds this, 0..1. */
  maxEventLoopUtilization?: number;
  /** Shed while V8's used heap after the last major GC exceeds this many bytes. */
  maxHeapUsedBytes?: number;
  /** The Retry-After header, seconds. Default 10. */
  retryAfterSeconds?: number;
  /** How often the signals are sampled, ms. Default 500. */
  sampleIntervalMs?: number;
  /** Never shed these: paths (exact, query ignored), regexps tested on the path, or a predicate. */
  exempt?: readonly (string | RegExp)[] | ((req: IncomingMessage) => boolean);
  /** Called for each shed request (after it was answered); a throw is contained. */
  onShed?: (info: ShedInfo) => void;
  response?: ShedResponse;
}

export interface ResolvedShed {
  readonly maxEventLoopDelayMs: number | undefined;
  readonly maxEventLoopUtilization: number | undefined;
  readonly maxHeapUsedBytes: number | undefined;
  readonly retryAfterSeconds: number;
  readonly sampleIntervalMs: number;
  readonly exempt: (req: IncomingMessage, path: string) => boolean;
  readonly onShed: ((info: ShedInfo) => void) | undefined;
  readonly status: number;
  /** Body and its content type, serialized once. */
  readonly body: (reason: ShedReason) => { type: string; text: string };
}

export interface ResolvedLoopLag {
  readonly resolutionMs: number;
  readonly stallThresholdMs: number;
  readonly captureStacks: boolean;
  readonly windowMs: number;
  readonly maxStacksPerMinute: number;
  readonly profiler: false | Readonly<Required<ProfilerOptions>>;
  readonly expected: { readonly routes: ReadonlySet<string>; readonly when: ((report: StallReport) => boolean) | undefined } | undefined;
  /** `loopLag.capture`: how stall stacks are taken. */
  readonly capture: 'auto' | 'native' | 'inspector';
}

/** The `promises` options after defaults and validation: the promise tracker's own. */
export type ResolvedPromises = ResolvedPromiseOptions;

export interface ResolvedCorrelation {
  readonly header: string;
  readonly accept: readonly string[];
  readonly traceparent: boolean;
  readonly validate: (id: string) => boolean;
  readonly generate: () => string;
  readonly echo: boolean;
  readonly propagate: boolean;
}

/** Options after defaults were merged and everything was validated. Frozen. */
export interface ResolvedOptions {
  readonly loopLag: ResolvedLoopLag | false;
  readonly promises: ResolvedPromises | false;
  readonly correlation: ResolvedCorrelation;
  readonly exporters: readonly Exporter[];
  readonly onReport: (report: Report) => void;
  readonly maxInflight: number;
  readonly logger: Logger;
  readonly bindEmitters: boolean;
  readonly shed: ResolvedShed | false;
  readonly frameFilter: (url: string) => boolean;
  readonly backpressure: ResolvedBackpressure | false;
  readonly outbound: ResolvedOutbound | false;
}
