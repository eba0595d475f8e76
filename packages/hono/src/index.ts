export type { AdapterOptions as LoopsightHonoOptions } from '@loopsight/core';
export { type HonoMiddleware, loopsight } from './middleware.js';
