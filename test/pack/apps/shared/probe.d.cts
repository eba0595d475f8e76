import type { IncomingMessage, ServerResponse } from 'node:http';

/** Structural on purpose: the ESM and CommonJS declarations of Monitor are two distinct classes. */
export interface ProbedMonitor {
  on(event: 'request', fn: (r: { correlationId: string; route?: string | undefined; status?: number | undefined }) => void): unknown;
  stop(): Promise<void>;
}

export interface ProbedApp {
  url: string;
  monitor: ProbedMonitor;
  close(): Promise<void>;
}

export declare function listen(handler: (req: IncomingMessage, res: ServerResponse) => unknown, monitor: ProbedMonitor): Promise<ProbedApp>;
export declare function probe(name: string, app: ProbedApp): Promise<unknown>;
