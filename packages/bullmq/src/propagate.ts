import { currentScope } from '@loopsight/core';
import { LoopsightTypeError } from '@loopsight/options';

/**
 * The key of job data under which `propagate(queue)` stores the enqueuing scope's correlation id.
 * The worker reads it (validated like an incoming header) and removes it from `job.data` before
 * the processor runs, so the processor sees the data as it was added.
 */
export const DATA_KEY = '__loopsightId';

/** The part of a BullMQ 5 or 6 `Queue` that `propagate` wraps. */
export interface QueueLike {
  // biome-ignore lint/suspicious/noExplicitAny: BullMQ's own parameter types, whatever the queue's generics.
  add(name: string, data: any, opts?: any): Promise<unknown>;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  addBulk(jobs: any[]): Promise<unknown[]>;
}

const WRAPPED = Symbol.for('loopsight.bullmq.propagate.v1');

function isPlainData(data: unknown): data is Record<string, unknown> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  const proto = Object.getPrototypeOf(data);
  return proto === Object.prototype || proto === null;
}

/** The data with the current scope's id, a copy: the caller's object is never changed. */
function stamp(data: unknown): unknown {
  const id = currentScope()?.correlationId;
  if (id === undefined || !isPlainData(data) || DATA_KEY in data) return data;
  return { ...data, [DATA_KEY]: id };
}

/**
 * Makes `queue.add()` and `queue.addBulk()` carry the correlation id of the scope they are called
 * in (an HTTP request, a job) in the job's data, under `DATA_KEY`: a worker monitored by
 * `loopsight(worker)` runs the job under that id. Jobs added outside any scope, and jobs whose
 * data is not a plain object, are added unchanged. Idempotent; returns the queue.
 *
 * @example
 * const queue = propagate(new Queue('mail', { connection }));
 * app.post('/signup', async (req, res) => { await queue.add('welcome', { to }); res.end(); });
 */
export function propagate<Q extends QueueLike>(queue: Q): Q {
  if (typeof queue !== 'object' || queue === null || typeof queue.add !== 'function' || typeof queue.addBulk !== 'function') {
    throw new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', 'loopsight: propagate() expects a BullMQ Queue (with add and addBulk)');
  }
  const target = queue as Q & { [WRAPPED]?: true };
  if (target[WRAPPED]) return queue;
  const { add, addBulk } = queue;
  Object.defineProperty(target, WRAPPED, { value: true });
  // Own properties over the prototype's methods: this queue only, and BullMQ's own calls of
  // this.add (a scheduler's next job) go through them too.
  target.add = function (this: Q, name: string, data: unknown, opts?: unknown) {
    return add.call(this, name, stamp(data), opts);
  };
  target.addBulk = function (this: Q, jobs: unknown[]) {
    const stamped = Array.isArray(jobs)
      ? jobs.map((job) => (typeof job === 'object' && job !== null ? { ...job, data: stamp((job as { data?: unknown }).data) } : job))
      : jobs;
    return addBulk.call(this, stamped);
  };
  return queue;
}
