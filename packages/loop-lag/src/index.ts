export type { LoopDelayRecorder } from './delay.js';
export { createLoopDelayRecorder } from './delay.js';
export { createOverloadGuard } from './guard.js';
export type {
  GuardOptions,
  GuardState,
  OverloadGuard,
  ShedReason,
  StackSource,
  StallWatchdog,
  StallWatchdogOptions,
  WatchdogStackFrame,
  WatchdogStallReport,
  WatchdogStatus,
} from './types.js';
export { createStallWatchdog } from './watchdog.js';
