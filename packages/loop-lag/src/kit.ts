/**
 * @packageDocumentation
 * What `@loopsight/core` takes from loop-lag beyond its public API: the delay arithmetic its
 * sampler shares with the overload guard, and the main thread's source mapper. Not public API: no
 * stability promise, any release may change it.
 */
export { beyondMs, NS_PER_MS, percentileSteps } from './delay.js';
export { mapStackFrames } from './sourcemap.js';
