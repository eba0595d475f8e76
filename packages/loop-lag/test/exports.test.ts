import * as loopLag from '@loopsight/loop-lag';
import { expect, it } from 'vitest';

// The public surface: the watchdog and the overload guard, and the delay recorder, its arithmetic
// and the option defaults and ranges that @loopsight/core reads. A change here is a change users see.
it('pins the runtime exports', () => {
  expect(Object.keys(loopLag).sort()).toEqual([
    'LOOP_LAG_DEFAULTS',
    'LOOP_LAG_LIMITS',
    'NS_PER_MS',
    'beyondMs',
    'createLoopDelayRecorder',
    'createOverloadGuard',
    'createStallWatchdog',
    'expectBlocking',
    'mapStackFrames',
    'percentileSteps',
  ]);
  expect(Object.isFrozen(loopLag.LOOP_LAG_DEFAULTS)).toBe(true);
  expect(Object.isFrozen(loopLag.LOOP_LAG_LIMITS.thresholdMs)).toBe(true);
});
