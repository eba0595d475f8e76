import * as loopLag from '@loopsight/loop-lag';
import * as kit from '@loopsight/loop-lag/kit';
import { expect, it } from 'vitest';

// The public surface: the watchdog, the overload guard, the delay recorder and the option defaults
// and ranges. A change here is a change users see.
it('pins the runtime exports', () => {
  expect(Object.keys(loopLag).sort()).toEqual([
    'LOOP_LAG_DEFAULTS',
    'LOOP_LAG_LIMITS',
    'createLoopDelayRecorder',
    'createOverloadGuard',
    'createStallWatchdog',
    'expectBlocking',
  ]);
  expect(Object.isFrozen(loopLag.LOOP_LAG_DEFAULTS)).toBe(true);
  expect(Object.isFrozen(loopLag.LOOP_LAG_LIMITS.thresholdMs)).toBe(true);
});

// What only @loopsight/core takes stays off the root entry.
it("keeps core's kit apart from the public entry", () => {
  expect(Object.keys(kit).sort()).toEqual(['NS_PER_MS', 'beyondMs', 'mapStackFrames', 'percentileSteps']);
  expect(Object.keys(kit).filter((name) => name in loopLag)).toEqual([]);
});
