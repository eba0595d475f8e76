import { performance } from 'node:perf_hooks';
import { enablePropagation } from '@loopsight/context';
import type { AdapterOptions, Monitor, RequestScope } from '@loopsight/core';
import { internals, isThenable, JOB_METHOD, monitorFor, propagation, runInScope, scopeId } from '@loopsight/core/adapter';
import { LoopsightTypeError, warning } from '@loopsight/options';
import { DATA_KEY } from './propagate.js';

/**
 * The public part of a BullMQ 5 or 6 `Worker` loopsight needs. (It also wraps the worker's
 * `callProcessJob`, which BullMQ's types mark protected: checked at run time.)
 */
export interface WorkerLike {
  close(force?: boolean): Promise<void>;
}

/** The job fields loopsight reads. */
interface JobLike {
  name?: unknown;
  data?: unknown;
}

// BullMQ 5 passes (job, token), 6 (job, token, signal): named parameters, no rest array per job.
type CallProcessJob = (this: unknown, job: JobLike, token?: unknown, signal?: unknown) => unknown;

interface Patchable {
  callProcessJob: CallProcessJob;
  close: (this: unknown, ...args: unknown[]) => Promise<void>;
}

/** A job running now: what its end (or the worker's close) needs. */
interface Open {
  readonly scope: RequestScope;
  readonly slot: number;
  readonly t0: number;
  /** Its index in the worker's list of open jobs, -1 once ended. */
  index: number;
}

const PATCHED = Symbol.for('loopsight.bullmq.worker.v1');
let workers = 0;

/** The enqueuing id from the job's data, removed from it: the processor sees the data as added. */
function takeId(job: JobLike): unknown {
  const data = job.data;
  if (typeof data !== 'object' || data === null || !Object.hasOwn(data, DATA_KEY)) return undefined;
  const id = (data as Record<string, unknown>)[DATA_KEY];
  delete (data as Record<string, unknown>)[DATA_KEY];
  return id;
}

/**
 * Monitors a BullMQ 5 or 6 worker: each job's processor runs in a scope
 * `{ correlationId, method: 'JOB', route: job.name }`, where the id is the one `propagate(queue)`
 * stored with the job (validated like an incoming header; a refused one is replaced and counted),
 * else a fresh one. Stalls, promise reports, `getCorrelationId()`, outbound propagation and the
 * exporters' job metrics then work per job; each job emits a 'request' record (`aborted`: it
 * failed). `worker.close()` ends the scopes of jobs it abandons and stops a monitor made here.
 * Returns the monitor.
 *
 * @example
 * const worker = new Worker('mail', processor, { connection, concurrency: 10 });
 * const monitor = loopsight(worker, { exporters: [prometheusExporter()] });
 */
export function loopsight(worker: WorkerLike, options?: AdapterOptions): Monitor {
  const target = worker as unknown as Patchable & { [PATCHED]?: true };
  if (typeof worker !== 'object' || worker === null || typeof target.callProcessJob !== 'function' || typeof target.close !== 'function') {
    throw new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', 'loopsight: loopsight(worker) expects a BullMQ 5 or 6 Worker');
  }
  if (target[PATCHED]) {
    throw new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', 'loopsight: this worker is monitored already');
  }
  const { monitor, owned } = monitorFor(options);
  const handle = internals(monitor);
  const config = handle.options.correlation;
  if (config.propagate) monitor.attach(propagation(enablePropagation, config.header));

  // The jobs running now, for close() to end: bounded by the worker's concurrency. An array with
  // swap-removal, as core's in-flight registry: no hashing of a new object per job.
  const open: Open[] = [];
  const end = (job: Open, aborted: boolean) => {
    const i = job.index;
    if (i < 0) return;
    job.index = -1;
    const last = open.pop() as Open;
    if (last !== job) {
      open[i] = last;
      last.index = i;
    }
    try {
      handle.end(job.scope, job.slot, job.t0, undefined, aborted);
    } catch (error) {
      // Never into BullMQ's completion of the job: a throw here would fail it.
      handle.reportError('a job scope could not be ended', warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'bullmq:end' }));
    }
  };
  const endAll = () => {
    while (open.length > 0) end(open[open.length - 1] as Open, true);
  };

  // BullMQ's processJob calls this.callProcessJob(job, token, signal) for every job, sandboxed
  // or not, after fetching and before completing or failing it: an own property in front of the
  // prototype's method is one hop per job, and unpatching is a delete. (The telemetry option is
  // set at construction, and BullMQ's own producer spans overwrite its metadata on add.)
  const hadOwn = Object.hasOwn(target, 'callProcessJob');
  const original = target.callProcessJob;
  const originalClose = target.close;
  const callProcessJob: CallProcessJob = function (this: unknown, job, token, signal) {
    let entry: Open;
    try {
      const name = job?.name;
      const scope: RequestScope = {
        correlationId: scopeId(takeId(job), config, handle),
        method: JOB_METHOD,
        route: typeof name === 'string' ? name : String(name),
        startedAt: Date.now(),
      };
      entry = { scope, slot: handle.begin(scope), t0: performance.now(), index: open.length };
      open.push(entry);
    } catch (error) {
      handle.reportError('a job could not be given a scope', warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'bullmq:job' }));
      return original.call(this, job, token, signal);
    }
    let result: unknown;
    try {
      result = runInScope(entry.scope, () => original.call(this, job, token, signal));
    } catch (error) {
      end(entry, true);
      throw error;
    }
    if (!isThenable(result)) {
      end(entry, false);
      return result;
    }
    // A native promise's own then; another thenable is adopted first.
    return (result instanceof Promise ? result : Promise.resolve(result)).then(
      (value) => {
        end(entry, false);
        return value;
      },
      (error: unknown) => {
        end(entry, true);
        throw error;
      },
    );
  };
  let patched = false;
  const patch = () => {
    if (patched) return;
    patched = true;
    Object.defineProperty(target, PATCHED, { value: true, configurable: true });
    target.callProcessJob = callProcessJob;
    target.close = close;
  };
  const unpatch = () => {
    if (!patched) return;
    patched = false;
    delete target[PATCHED];
    if (hadOwn) target.callProcessJob = original;
    else delete (target as Partial<Patchable>).callProcessJob;
    if (target.close === close) target.close = originalClose;
    endAll();
  };
  // close(force) abandons the jobs still running: their scopes end with it, failed.
  const close = async function (this: unknown, ...args: unknown[]): Promise<void> {
    try {
      await originalClose.apply(this, args);
    } finally {
      unpatch();
      if (owned) await monitor.stop();
    }
  };

  monitor.attach({ name: `@loopsight/bullmq(worker ${++workers})`, start: patch, stop: unpatch });
  monitor.start();
  return monitor;
}
