export type { AdapterOptions as LoopsightExpressOptions } from '@loopsight/core';
export { type ExpressMiddleware, loopsight } from './middleware.js';
