import { isUserFrame } from '@loopsight/promises';
import type { StackFrame } from './types.js';

// Installed, loopsight's packages sit under node_modules/@loopsight/ (already not the user's); the
// segment test also covers bundled or vendored copies.
const LOOPSIGHT = /[\\/]@loopsight[\\/]/;

/** The first frame that is the application's own: the line a reader should see first. */
export function culpritOf(stack: readonly StackFrame[]): StackFrame | undefined {
  for (const frame of stack) if (isUserFrame(frame.url) && !LOOPSIGHT.test(frame.url)) return frame;
  return undefined;
}
