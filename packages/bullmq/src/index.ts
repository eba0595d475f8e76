export type { AdapterOptions as LoopsightBullmqOptions } from '@loopsight/core';
export { DATA_KEY, propagate, type QueueLike } from './propagate.js';
export { loopsight, type WorkerLike } from './worker.js';
