export { detach } from './detach.js';
export { resolvePromiseOptions } from './options.js';
export { SiteLimiter } from './report.js';
export { isUserFrame } from './stack.js';
export { createPromiseTracker } from './tracker.js';
export type {
  PromiseKind,
  PromiseKindCounts,
  PromiseOptions,
  PromiseTracker,
  PromiseTrackerOptions,
  PromiseTrackerStats,
  ResolvedPromiseOptions,
  TrackedPromiseReport,
  TrackerMode,
  TrackerStackFrame,
} from './types.js';
