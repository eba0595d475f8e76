import type { StackFrame } from '@loopsight/core';

/** A report's frames as a V8 stack trace, the format `code.stacktrace` asks for. */
export function formatStack(frames: readonly StackFrame[]): string {
  return frames.map((f) => `    at ${f.functionName || '<anonymous>'} (${f.url || '<unknown>'}:${f.line}:${f.column})`).join('\n');
}
