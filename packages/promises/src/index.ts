export { detach } from './detach.js';
export { isUserFrame } from './stack.js';
export { createPromiseTracker, TRACKER_DEFAULTS } from './tracker.js';
export type {
  PromiseKind,
  PromiseKindCounts,
  PromiseTracker,
  PromiseTrackerOptions,
  PromiseTrackerStats,
  TrackedPromiseReport,
  TrackerMode,
  TrackerStackFrame,
} from './types.js';
