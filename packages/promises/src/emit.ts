/**
 * Learns of unhandled rejections from Node's own 'unhandledRejection' emit, without listening to
 * it: a listener would change what the process does (no crash in the default mode, no warning in
 * 'warn' mode). The wrapper only looks, then calls the original with the same arguments.
 * `seen` must not throw. Returns the function that takes the wrapper out again.
 */
export function observeUnhandledRejections(seen: (reason: unknown, promise: unknown) => void): () => void {
  const original = process.emit;
  let live = true;
  const emit = function (this: unknown, event: string | symbol, ...args: unknown[]): boolean {
    if (live && event === 'unhandledRejection') seen(args[0], args[1]);
    return Reflect.apply(original, this, [event, ...args]) as boolean;
  };
  process.emit = emit as typeof process.emit;
  return () => {
    live = false;
    // Someone wrapped emit after us: leave their wrapper in place, ours is a pass-through now.
    if (process.emit === (emit as typeof process.emit)) process.emit = original;
  };
}
