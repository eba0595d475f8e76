import { currentScope } from '@loopsight/core';
import { LoopsightTypeError } from '@loopsight/options';

/**
 * The key of job data under which `propagate(queue)` stores the enqueuing scope's correlation id.
 * The worker reads it (validated like an incoming header) and removes it from `job.data` before
 * the processor runs, so the processor sees the data as it was added.
 */
export const DATA_KEY = '__loopsightId';

/** The part of a BullMQ 5 or 6 `Queue` or `FlowProducer` that `propagate` wraps. */
export interface QueueLike {
  // biome-ignore lint/suspicious/noExplicitAny: Queue#add(name, data, opts) or FlowProducer#add(flow, opts), whatever their generics.
  add(...args: any[]): Promise<unknown>;
  // biome-ignore lint/suspicious/noExplicitAny: as above.
  addBulk(jobs: any[]): Promise<unknown[]>;
}

const WRAPPED = Symbol.for('loopsight.bullmq.propagate.v1');

function isPlainData(data: unknown): data is Record<string, unknown> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  const proto = Object.getPrototypeOf(data);
  return proto === Object.prototype || proto === null;
}

/** Tree depth stamped in a flow: BullMQ's flows are shallow; a cycle or a hostile object stops here. */
const MAX_FLOW_DEPTH = 64;

/** A job of addBulk, or a flow's node with its children (FlowProducer), stamped in a copy. */
function stampNode(node: unknown, id: string, depth: number): unknown {
  if (typeof node !== 'object' || node === null || depth > MAX_FLOW_DEPTH) return node;
  const { data, children } = node as { data?: unknown; children?: unknown };
  const copy: Record<string, unknown> = { ...(node as Record<string, unknown>), data: stampWith(data, id) };
  if (Array.isArray(children)) copy.children = children.map((child) => stampNode(child, id, depth + 1));
  return copy;
}

function stampWith(data: unknown, id: string): unknown {
  if (!isPlainData(data) || DATA_KEY in data) return data;
  return { ...data, [DATA_KEY]: id };
}

/**
 * Makes `queue.add()` and `queue.addBulk()` carry the correlation id of the scope they are called
 * in (an HTTP request, a job) in the job's data, under `DATA_KEY`: a worker monitored by
 * `loopsight(worker)` runs the job under that id. Jobs added outside any scope, and jobs whose
 * data is not a plain object, are added unchanged. A `FlowProducer` works too: every job of the
 * flow, children included, carries the id. Idempotent; returns the queue.
 *
 * @example
 * const queue = propagate(new Queue('mail', { connection }));
 * app.post('/signup', async (req, res) => { await queue.add('welcome', { to }); res.end(); });
 */
export function propagate<Q extends QueueLike>(queue: Q): Q {
  if (typeof queue !== 'object' || queue === null || typeof queue.add !== 'function' || typeof queue.addBulk !== 'function') {
    throw new LoopsightTypeError(
      'ERR_LOOPSIGHT_INVALID_ARGUMENT',
      'loopsight: propagate() expects a BullMQ Queue or FlowProducer (with add and addBulk)',
    );
  }
  const target = queue as Q & { [WRAPPED]?: true };
  if (target[WRAPPED]) return queue;
  const { add, addBulk } = queue;
  Object.defineProperty(target, WRAPPED, { value: true });
  // Own properties over the prototype's methods: this queue only.
  // Queue#add(name, data, opts) and FlowProducer#add(flow, opts): told apart by the first argument.
  target.add = function (this: Q, ...args: unknown[]) {
    const id = currentScope()?.correlationId;
    if (id !== undefined) {
      if (typeof args[0] === 'string') args[1] = stampWith(args[1], id);
      else args[0] = stampNode(args[0], id, 0);
    }
    return add.apply(this, args);
  };
  target.addBulk = function (this: Q, jobs: unknown[]) {
    const id = currentScope()?.correlationId;
    if (id === undefined || !Array.isArray(jobs)) return addBulk.call(this, jobs);
    return addBulk.call(
      this,
      jobs.map((job) => stampNode(job, id, 0)),
    );
  };
  return queue;
}
