export type {
  StackSource,
  StallWatchdog,
  StallWatchdogOptions,
  WatchdogStackFrame,
  WatchdogStallReport,
  WatchdogStatus,
} from './types.js';
export { createStallWatchdog } from './watchdog.js';
