import type { IncomingMessage, ServerResponse } from 'node:http';
import { getCorrelationId } from '@loopsight/context';
import type { Monitor } from '@loopsight/core';
import { type ExpressMiddleware, loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';

/** The part of Nest's `AbstractHttpAdapter` read here; Nest's own type would tie us to one @nestjs/core. */
export interface NestHttpAdapter {
  getType(): string;
  getInstance(): unknown;
  /** Nest 11: one hook run before any other of the platform's (Express middleware, Fastify onRequest hooks). */
  setOnRequestHook?(hook: (request: never, reply: never, done: () => void) => void): void;
}

/** Turns tracking on: makes the adapter, which starts the monitor. */
export type Attach = () => void;

type Next = (error?: unknown) => void;

interface ExpressApp {
  use(middleware: (req: IncomingMessage & { id?: unknown }, res: ServerResponse, next: Next) => void): unknown;
}

interface FastifyRequestLike {
  id: unknown;
}

type FastifyHook = (request: FastifyRequestLike, reply: unknown, done: () => void) => void;

interface FastifyApp {
  addHook(name: string, hook: FastifyHook): unknown;
}

/**
 * pino-http (so nestjs-pino) takes `req.id` as the request's id when it is set: the correlation id
 * reaches pino's request logger with no option. Never overwrites an id another middleware set.
 */
function onExpress(app: ExpressApp, monitor: Monitor): Attach {
  let track: ExpressMiddleware | undefined;
  app.use(function loopsight(req, res, next) {
    if (track === undefined) return next();
    track(req, res, (error?: unknown) => {
      if (req.id === undefined) req.id = getCorrelationId();
      next(error);
    });
  });
  return () => {
    track ??= expressLoopsight({ monitor });
  };
}

/**
 * On Fastify, middie (Nest's middleware runner) copies `request.id` onto the raw request that
 * pino-http reads: the correlation id replaces Fastify's generated `req-1`, `req-2`... there.
 */
function correlationAsRequestId(request: FastifyRequestLike, _reply: unknown, next: () => void): void {
  const id = getCorrelationId();
  if (id !== undefined) request.id = id;
  next();
}

/**
 * Nest registers middie (its middleware runner) before it creates any provider, so a hook added
 * now runs after Nest middleware (pino-http among them). Nest 11 runs its adapter's one request
 * hook before every other: the hook goes there. Nest 10 has none: there, Nest middleware on
 * Fastify runs before the scope opens.
 */
function onFastify(adapter: NestHttpAdapter, app: FastifyApp, monitor: Monitor): Attach {
  let open: FastifyHook | undefined;
  const hook: FastifyHook = (request, reply, done) => {
    if (open === undefined) return done();
    open(request, reply, () => correlationAsRequestId(request, reply, done));
  };
  if (adapter.setOnRequestHook) adapter.setOnRequestHook(hook);
  else app.addHook('onRequest', hook);
  return () => {
    if (open !== undefined) return;
    // The plugin is called on a view of the app that hands its onRequest hook to ours, rather than
    // register()ed (avvio would load it after Nest's plugins), and skips its app.loopsight
    // decorator (Nest code injects Monitor). It calls back at once; it fails only on an invalid
    // monitor, which monitorFor() already refused.
    const view: object = new Proxy(app, {
      get(instance, key) {
        if (key === 'decorate') return () => view;
        if (key !== 'addHook') return Reflect.get(instance, key, instance);
        return (name: string, added: FastifyHook) => {
          if (name === 'onRequest') open = added;
          else instance.addHook(name, added);
          return view;
        };
      },
    });
    fastifyLoopsight(view as never, { monitor }, (error?: Error) => {
      if (error) throw error;
    });
  };
}

/**
 * Mounts loopsight's hook on the platform under Nest, before the body parser and any Nest
 * middleware, guard, interceptor or pipe: called while Nest creates the app's providers, when the
 * platform has no route or middleware of Nest's yet. The hook lets requests through untracked
 * until `attach()`, called when the app is bootstrapped: Nest's own start-up work is not loop
 * delay that the overload guard would shed for. Undefined when the platform is unknown.
 */
export function mountOn(adapter: NestHttpAdapter, monitor: Monitor): Attach | undefined {
  const type = adapter.getType();
  if (type === 'express') return onExpress(adapter.getInstance() as ExpressApp, monitor);
  if (type === 'fastify') return onFastify(adapter, adapter.getInstance() as FastifyApp, monitor);
  return undefined;
}
