export { createLoopDelayRecorder, type LoopDelayReader, type LoopDelayRecorder } from './delay.js';
export { expectBlocking } from './expected.js';
export { createOverloadGuard } from './guard.js';
export { LOOP_LAG_DEFAULTS, LOOP_LAG_LIMITS } from './options.js';
export type {
  CaptureBackend,
  GuardOptions,
  GuardState,
  OverloadGuard,
  ProfilerOptions,
  RequestSource,
  ShedReason,
  StackSkipped,
  StackSource,
  StallWatchdog,
  StallWatchdogOptions,
  WatchdogStackFrame,
  WatchdogStallReport,
  WatchdogStatus,
} from './types.js';
export { createStallWatchdog } from './watchdog.js';
