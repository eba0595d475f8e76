/**
 * @packageDocumentation
 * loopsight for NestJS 10 and 11 on @nestjs/platform-express and @nestjs/platform-fastify:
 * `LoopsightModule.forRoot()` / `forRootAsync()`, and the app's `Monitor` as an injection token.
 */
export { LoopsightModule } from './module.js';
export { Monitor } from './monitor.js';
export type { LoopsightModuleAsyncOptions, LoopsightModuleOptions } from './types.js';
