export { LoopsightModule } from './module.js';
export { Monitor } from './monitor.js';
export type { LoopsightModuleAsyncOptions, LoopsightModuleOptions } from './types.js';
