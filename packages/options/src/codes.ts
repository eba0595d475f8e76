/**
 * Every code a loopsight error or warning carries, with its one-line meaning. Codes are stable:
 * switch on them, never on a message's English text. `ERR_LOOPSIGHT_*` are thrown; `LOOPSIGHT_*`
 * are warnings (reported once through the monitor's logger, `process.emitWarning` by default, and
 * on the error handed to an `onError(what, error)` callback). docs/errors.md says what to do.
 *
 * @example
 * try { createMonitor(options); } catch (error) { if (error.code === 'ERR_LOOPSIGHT_UNKNOWN_OPTION') … }
 */
export const CODES = Object.freeze({
  ERR_LOOPSIGHT_INVALID_OPTION: 'an option has a value it does not accept',
  ERR_LOOPSIGHT_UNKNOWN_OPTION: 'an option name that is not one (a typo, or an option of another package)',
  ERR_LOOPSIGHT_INVALID_ARGUMENT: 'a function was called with an argument it does not take',
  ERR_LOOPSIGHT_NOT_A_MONITOR: 'a Monitor was expected, and what was given is not one from createMonitor()',
  ERR_LOOPSIGHT_UNSUPPORTED_RUNTIME: 'the runtime lacks what the feature needs (node:v8 promiseHooks)',
  LOOPSIGHT_WARNING: 'a warning whose source gives no code of its own',
  LOOPSIGHT_CALLBACK_THREW: 'a function you passed (a listener, onReport, validate, authorize…) threw; loopsight went on without it',
  LOOPSIGHT_COMPONENT_FAILED: 'an exporter or other component failed to start or stop',
  LOOPSIGHT_EXPORTER_FAILED: 'an exporter could not create, record or read one of its metrics or spans',
  LOOPSIGHT_REQUEST_FAILED: 'loopsight could not do its part of one request (scope, correlation id, shed answer); the request was served',
  LOOPSIGHT_SHARED_PART_FAILED: 'a part shared by every monitor of the process (watchdog, tracker, recorder) failed to start or stop',
  LOOPSIGHT_MONITORS_DISAGREE: 'monitors of one process ask the one shared part for different settings; the first one wins',
  LOOPSIGHT_WATCHDOG_LOST: 'the stall watchdog thread exited or stopped answering; it is restarted, or stalls are timed without stacks',
  LOOPSIGHT_CAPTURE_FAILED:
    'a step of a stall capture failed (a command unanswered, the scope unreadable); the thread was let go, the stall reported without it',
  LOOPSIGHT_CAPTURE_BACKEND:
    'the stall capture backend asked for cannot do all it should (the native addon did not load: the inspector takes the stacks; or it loaded: its stacks name no request); stalls still get stacks',
  LOOPSIGHT_STACKS_OFF: 'stall stacks cannot be taken (no inspector, or a debugger may be attached); stalls are still timed',
  LOOPSIGHT_SOURCE_MAP: 'some stall frames are not source-mapped (a map missing, too large or not a regular file)',
  LOOPSIGHT_THREADS: 'figures of worker threads cannot be heard, or too many threads report',
  LOOPSIGHT_PROMISE_TRACKER: 'the promise tracker hit a problem (a hook or a report failed)',
  LOOPSIGHT_BACKPRESSURE: 'the backpressure watch hit a problem on a write or a report; the write went on unwatched',
  LOOPSIGHT_DASHBOARD: 'the dashboard could not serve its page or its feed',
  LOOPSIGHT_PROPAGATION: 'the correlation header could not be set on an outbound request; the request went without it',
  LOOPSIGHT_REFUSED_ID: 'withCorrelationId() was given an id that is not 1-1024 visible ASCII characters; a fresh one was used',
  LOOPSIGHT_ENV_IGNORED: 'a LOOPSIGHT_* environment variable has a value the preload refuses; the default applies',
  LOOPSIGHT_ENV_UNKNOWN: 'a LOOPSIGHT_* environment variable the preload does not know, close to one it does',
  LOOPSIGHT_PRELOAD: 'the preload could not start one of its parts (the monitor, the metrics server, the OTel exporter)',
  LOOPSIGHT_CONFIG_IGNORED: 'the LOOPSIGHT_CONFIG file is ignored (unreadable, not JSON, or options refused)',
} as const);

/** A code from {@link CODES}. */
export type LoopsightCode = keyof typeof CODES;
