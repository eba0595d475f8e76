import type { AdapterOptions } from '@loopsight/core';
import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency } from '@nestjs/common';

/** What `LoopsightModule.forRoot()` takes: the options of `createMonitor()`, or `{ monitor }` to share one Monitor. */
export type LoopsightModuleOptions = AdapterOptions;

/**
 * What `LoopsightModule.forRootAsync()` takes: a factory of the options, with the providers it
 * needs (`inject`) and the modules that export them (`imports`), as Nest's own `forRootAsync`s do.
 */
export interface LoopsightModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Returns the options (or a promise of them), given the providers named in `inject`, in order. */
  useFactory: (...args: never[]) => LoopsightModuleOptions | undefined | Promise<LoopsightModuleOptions | undefined>;
  /** The providers `useFactory` receives; the modules exporting them go in `imports`. */
  inject?: (InjectionToken | OptionalFactoryDependency)[];
}
