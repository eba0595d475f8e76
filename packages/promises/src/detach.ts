interface Detachable {
  detach(promise: object): void;
}

// Every running tracker, shared by the ESM and CJS builds and by two copies in node_modules, so
// that detach() imported from any of them reaches the tracker the monitor runs.
const KEY = Symbol.for('loopsight.promises.trackers.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: Set<Detachable> };
holder[KEY] ??= new Set();
const trackers: Set<Detachable> = holder[KEY];

/** @internal */
export function register(tracker: Detachable): void {
  trackers.add(tracker);
}

/** @internal */
export function unregister(tracker: Detachable): void {
  trackers.delete(tracker);
}

/**
 * Marks intended fire-and-forget work: the runtime twin of `void promise`. The promise (or the
 * chain it ends, as in `detach(audit().catch(log))`) is then never reported as floating or leaked.
 * A rejection nobody handles is still unhandled: Node's behaviour does not change, and it is still
 * reported. Returns nothing, so nothing is chained by mistake.
 *
 * @example
 * app.post('/orders', async (req, res) => {
 *   const order = await save(req.body);
 *   detach(sendConfirmation(order).catch((error) => log.warn(error)));
 *   res.status(201).json(order);
 * });
 */
export function detach(promise: PromiseLike<unknown>): void {
  if ((typeof promise !== 'object' && typeof promise !== 'function') || promise === null) return;
  for (const tracker of trackers) tracker.detach(promise);
}
