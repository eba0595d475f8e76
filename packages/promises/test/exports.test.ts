import * as promises from '@loopsight/promises';
import { expect, it } from 'vitest';

// The public surface: a change here is a change users see.
it('pins the runtime exports', () => {
  // resolvePromiseOptions is there for @loopsight/core, which validates `promises` options with it;
  // SiteLimiter for core's backpressure reports, which follow promise reports' once-a-minute rule.
  expect(Object.keys(promises).sort()).toEqual(['SiteLimiter', 'createPromiseTracker', 'detach', 'isUserFrame', 'resolvePromiseOptions']);
});
