import * as workerThreads from 'node:worker_threads';
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { LoopsightError, warning } from '@loopsight/options';
import type { LoopSampler } from './sampler.js';
import type { LoopDelayHistogram, LoopStats, StallReport } from './types.js';

/**
 * The BroadcastChannel worker threads' monitors send their figures on, to the main thread's. One
 * name per process for every copy of core: the channel is process-wide, as the hub is.
 */
const THREADS_CHANNEL = 'loopsight:core:threads:v1';

/** Most worker threads the main thread exports at once: the bound of the `thread` label. */
const MAX_THREADS = 64;

/** Longest part of a worker's name kept in its label; characters outside [A-Za-z0-9._-] become `_`. */
const MAX_NAME_LENGTH = 64;

/** A worker thread as the exporters label it. */
export interface ThreadInfo {
  readonly threadId: number;
  /** The worker's `name` option, where Node tells it to the worker (`worker_threads.threadName`, not Node 20); else empty. */
  readonly name: string;
  /** The `thread` label: `<threadId>` or `<threadId>:<name>`. */
  readonly label: string;
}

/** A worker's loop figures, as its own monitor last sent them. */
export interface ThreadSnapshot extends ThreadInfo {
  readonly histogram: LoopDelayHistogram;
  readonly stats: LoopStats;
}

export type ThreadEvent = { type: 'stall'; thread: ThreadInfo; report: StallReport } | { type: 'exit'; thread: ThreadInfo };

/** What exporters on the main thread read: the live worker threads, and their stalls and exits as they come. */
export interface ThreadFeed {
  threads(): ThreadSnapshot[];
  /** Returns the unsubscribe function. */
  subscribe(listener: (event: ThreadEvent) => void): () => void;
}

type FeedMessage =
  | { type: 'hello' }
  | { type: 'stats'; threadId: number; name: string; intervalMs: number; histogram: LoopDelayHistogram; stats: LoopStats }
  | { type: 'stall'; threadId: number; name: string; report: StallReport }
  | { type: 'exit'; threadId: number };

function threadLabel(id: number, name: string): string {
  const safe = name.slice(0, MAX_NAME_LENGTH).replace(/[^A-Za-z0-9._-]/g, '_');
  return safe === '' ? String(id) : `${id}:${safe}`;
}

/** The worker's name: Node 22.20+ and 24.6+ tell it (`threadName`); Node 20 does not. */
function ownName(): string {
  const name = (workerThreads as { threadName?: unknown }).threadName;
  return typeof name === 'string' ? name : '';
}

function open(onMessage: (message: FeedMessage) => void): BroadcastChannel {
  const channel = new BroadcastChannel(THREADS_CHANNEL);
  channel.onmessage = (event) => onMessage((event as { data: FeedMessage }).data);
  // After the listener, which refs it: loopsight never keeps a thread alive.
  channel.unref();
  return channel;
}

interface Entry {
  readonly info: ThreadInfo;
  snapshot: ThreadSnapshot | undefined;
  expiresAt: number;
}

/**
 * The main thread's view of the worker threads whose monitors report: their last figures, their
 * stalls, and their exits (said by the worker, or seen when its figures stop: a terminated worker
 * says nothing). At most MAX_THREADS at once; threads past it are not exported, and that is said once.
 */
export class ThreadRegistry implements ThreadFeed {
  readonly #entries = new Map<number, Entry>();
  readonly #listeners = new Set<(event: ThreadEvent) => void>();
  readonly #onError: (what: string, error: unknown) => void;
  #channel: BroadcastChannel | undefined;

  constructor(onError: (what: string, error: unknown) => void) {
    this.#onError = onError;
  }

  start(): void {
    if (this.#channel) return;
    try {
      this.#channel = open((message) => this.#onMessage(message));
      // Workers that started first send their figures now rather than at their next interval.
      this.#channel.postMessage({ type: 'hello' } satisfies FeedMessage);
    } catch (error) {
      this.#onError(
        'worker threads cannot be heard; only the main thread is exported',
        warning('LOOPSIGHT_THREADS', error, { site: 'listen' }),
      );
    }
  }

  stop(): void {
    this.#channel?.close();
    this.#channel = undefined;
    this.#entries.clear();
  }

  threads(): ThreadSnapshot[] {
    this.#sweep();
    const out: ThreadSnapshot[] = [];
    for (const entry of this.#entries.values()) if (entry.snapshot) out.push(entry.snapshot);
    return out;
  }

  subscribe(listener: (event: ThreadEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #onMessage(message: FeedMessage): void {
    this.#sweep();
    switch (message?.type) {
      case 'stats': {
        const entry = this.#entry(message.threadId, message.name);
        if (!entry) return;
        entry.snapshot = { ...entry.info, histogram: message.histogram, stats: message.stats };
        // A terminated worker says nothing: its figures are dropped after three missed intervals.
        entry.expiresAt = Date.now() + 3 * message.intervalMs + 1_000;
        return;
      }
      case 'stall': {
        const entry = this.#entry(message.threadId, message.name);
        if (entry) this.#tell({ type: 'stall', thread: entry.info, report: message.report });
        return;
      }
      case 'exit':
        this.#forget(message.threadId);
    }
  }

  #entry(id: number, name: string): Entry | undefined {
    const known = this.#entries.get(id);
    if (known) return known;
    if (this.#entries.size >= MAX_THREADS) {
      this.#onError(
        `more than ${MAX_THREADS} worker threads report`,
        new LoopsightError('LOOPSIGHT_THREADS', 'the threads past it are not exported', { site: 'too-many' }),
      );
      return undefined;
    }
    const entry: Entry = {
      info: { threadId: id, name, label: threadLabel(id, name) },
      snapshot: undefined,
      expiresAt: Date.now() + 60_000,
    };
    this.#entries.set(id, entry);
    return entry;
  }

  #forget(id: number): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    this.#tell({ type: 'exit', thread: entry.info });
  }

  #sweep(): void {
    const now = Date.now();
    for (const [id, entry] of this.#entries) if (entry.expiresAt < now) this.#forget(id);
  }

  #tell(event: ThreadEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onError('a worker thread listener threw', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'threads:listener' }));
      }
    }
  }
}

/**
 * A worker thread's side: sends its loop figures to the main thread every window, its stalls as
 * they are reported, and says when its last monitor stops or the thread exits.
 */
export class ThreadReporter {
  readonly #name = ownName();
  readonly #sampler: () => LoopSampler | undefined;
  readonly #intervalMs: number;
  readonly #onError: (what: string, error: unknown) => void;
  #channel: BroadcastChannel | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(sampler: () => LoopSampler | undefined, intervalMs: number, onError: (what: string, error: unknown) => void) {
    this.#sampler = sampler;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  start(): void {
    if (this.#channel) return;
    try {
      this.#channel = open((message) => {
        if (message?.type === 'hello') this.#send();
      });
    } catch (error) {
      this.#onError(
        'this worker thread cannot reach the main thread; its figures are not exported there',
        warning('LOOPSIGHT_THREADS', error, { site: 'reach' }),
      );
      return;
    }
    this.#timer = setInterval(() => this.#send(), this.#intervalMs).unref();
    this.#send();
    process.once('exit', this.#onExit);
  }

  stop(): void {
    process.off('exit', this.#onExit);
    this.#onExit();
  }

  stall(report: StallReport): void {
    this.#post({ type: 'stall', threadId, name: this.#name, report });
  }

  readonly #onExit = () => {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#post({ type: 'exit', threadId });
    this.#channel?.close();
    this.#channel = undefined;
  };

  #send(): void {
    const sampler = this.#sampler();
    if (!sampler) return;
    this.#post({
      type: 'stats',
      threadId,
      name: this.#name,
      intervalMs: this.#intervalMs,
      histogram: sampler.histogram(),
      stats: sampler.stats(),
    });
  }

  #post(message: FeedMessage): void {
    try {
      this.#channel?.postMessage(message);
    } catch (error) {
      this.#onError('a worker thread report could not be sent to the main thread', warning('LOOPSIGHT_THREADS', error, { site: 'send' }));
    }
  }
}

const NO_THREADS: ThreadFeed = Object.freeze({ threads: () => [], subscribe: () => () => {} });

/** The feed the exporters read; empty in a worker thread, and before a monitor runs on the main thread. */
export function emptyFeed(): ThreadFeed {
  return NO_THREADS;
}
