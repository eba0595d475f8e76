import type { Monitor as CoreMonitor } from '@loopsight/core';

/**
 * The injection token of the app's loopsight Monitor, and its type: inject it like any provider.
 * Not a class to construct or to test with `instanceof`; the value is the Monitor of
 * `@loopsight/core`.
 *
 * @example
 * @Injectable()
 * class Jobs {
 *   constructor(@Inject(Monitor) private readonly monitor: Monitor) {}
 *   run(job: Job) { return this.monitor.run({ route: 'job:' + job.name }, () => job.process()); }
 * }
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: a class is the token Nest injects by type; the interface gives it the Monitor's members.
export abstract class Monitor {}
export interface Monitor extends CoreMonitor {}
