export type { AdapterOptions as LoopsightKoaOptions } from '@loopsight/core';
export { type KoaContextLike, type KoaMiddleware, loopsight } from './middleware.js';
