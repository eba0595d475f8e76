import type { AdapterOptions } from '@loopsight/core';
import { internals, monitorFor } from '@loopsight/core/adapter';
import { checkKeys, LoopsightTypeError } from '@loopsight/options';
import type { DynamicModule, Provider } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { correlateNestLogger } from './logger.js';
import { Monitor } from './monitor.js';
import { mountOn } from './platform.js';
import type { LoopsightModuleAsyncOptions, LoopsightModuleOptions } from './types.js';

const OPTIONS = Symbol('loopsight options');
const SETUP = Symbol('loopsight setup');

/** What the module holds per app: its monitor, and the hooks Nest calls on it. */
interface Setup {
  monitor: Monitor;
  onApplicationBootstrap(): void;
  onApplicationShutdown(): Promise<void>;
}

/**
 * Runs while Nest creates the app's providers (`NestFactory.create`), so before Nest mounts its
 * body parser, middleware and routes on the platform: the hook mounted now comes first. The
 * monitor starts when the app is bootstrapped, after Nest's own start-up work.
 */
function setup(options: AdapterOptions | undefined, host: HttpAdapterHost | undefined): Setup {
  const { monitor, owned } = monitorFor(options);
  const adapter = host?.httpAdapter;
  // A standalone application context (createApplicationContext) serves no HTTP: monitor.run() only.
  const attach = adapter === undefined || adapter === null ? undefined : mountOn(adapter, monitor);
  if (adapter && attach === undefined) {
    internals(monitor).options.logger.warn(
      `loopsight: Nest's '${adapter.getType()}' platform is not supported (express and fastify are); its requests are not tracked`,
    );
  }
  // Now, not at bootstrap: a logger the app sets with app.useLogger() (nestjs-pino's) replaces it.
  const restoreLogger = correlateNestLogger();
  let started = false;
  return {
    monitor: monitor as Monitor,
    onApplicationBootstrap() {
      if (started) return;
      started = true;
      attach?.();
      monitor.start();
    },
    async onApplicationShutdown() {
      restoreLogger();
      // A shared monitor belongs to whoever created it.
      if (owned) await monitor.stop();
    },
  };
}

function build(options: Provider, imports: DynamicModule['imports']): DynamicModule {
  return {
    module: LoopsightModule,
    global: true,
    imports: imports ?? [],
    providers: [
      options,
      { provide: SETUP, useFactory: setup, inject: [OPTIONS, { token: HttpAdapterHost, optional: true }] },
      { provide: Monitor, useFactory: (s: Setup) => s.monitor, inject: [SETUP] },
    ],
    exports: [Monitor],
  };
}

/** What forRootAsync() takes, Nest's usual names. */
const ASYNC_KEYS = ['useFactory', 'inject', 'imports'];

/**
 * Applies loopsight to every route of the Nest app, on @nestjs/platform-express and
 * @nestjs/platform-fastify: a correlation id and a scope per request, opened before guards,
 * interceptors, pipes and filters; route templates as Nest registered them (global prefix,
 * version, controller and method paths). Global: `Monitor` is injectable everywhere.
 *
 * @example
 * @Module({ imports: [LoopsightModule.forRoot({ loopLag: { stallThresholdMs: 200 } })] })
 * export class AppModule {}
 */
// biome-ignore lint/complexity/noStaticOnlyClass: Nest's module shape: a class (the module's identity) with forRoot()/forRootAsync().
export class LoopsightModule {
  /** Options known up front; a bad option throws a TypeError here, naming it. */
  static forRoot(options?: LoopsightModuleOptions): DynamicModule {
    monitorFor(options);
    return build({ provide: OPTIONS, useValue: options }, []);
  }

  /** Options from DI (ConfigService...); checked when Nest creates the app. */
  static forRootAsync(options: LoopsightModuleAsyncOptions): DynamicModule {
    if (typeof options?.useFactory !== 'function') {
      throw new LoopsightTypeError(
        'ERR_LOOPSIGHT_INVALID_OPTION',
        'loopsight: LoopsightModule.forRootAsync() needs options.useFactory, a function returning the options',
        { path: 'useFactory' },
      );
    }
    checkKeys('', options, ASYNC_KEYS);
    return build({ provide: OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] }, options.imports);
  }
}
