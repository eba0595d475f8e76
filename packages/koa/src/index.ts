export type { AdapterOptions as LoopsightKoaOptions } from '@loopsight/core';
export { type KoaMiddleware, loopsight } from './middleware.js';
