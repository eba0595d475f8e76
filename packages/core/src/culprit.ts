import { isUserFrame } from '@loopsight/promises';
import type { StackFrame } from './types.js';

// Installed, loopsight's packages sit under node_modules/@loopsight/ (already not the user's); the
// segment test also covers bundled or vendored copies.
const LOOPSIGHT = /[\\/]@loopsight[\\/]/;

/** Whether a frame is the application's own by the default rule (never loopsight's own). */
export const isApplicationUrl = (url: string): boolean => isUserFrame(url) && !LOOPSIGHT.test(url);

/** The first frame that is the application's own: the line a reader should see first. */
export function culpritOf(stack: readonly StackFrame[], filter: (url: string) => boolean = isUserFrame): StackFrame | undefined {
  for (const frame of stack) {
    if (LOOPSIGHT.test(frame.url)) continue;
    try {
      if (filter(frame.url)) return frame;
    } catch {
      // A throwing filter names no culprit; the report still goes out.
      return undefined;
    }
  }
  return undefined;
}
