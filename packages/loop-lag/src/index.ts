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
