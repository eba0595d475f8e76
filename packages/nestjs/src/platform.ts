import type { IncomingMessage, ServerResponse } from 'node:http';
import { getCorrelationId } from '@loopsight/context';
import type { Monitor } from '@loopsight/core';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';

/** The part of Nest's `AbstractHttpAdapter` read here; Nest's own type would tie us to one @nestjs/core. */
export interface NestHttpAdapter {
  getType(): string;
  getInstance(): unknown;
  /** Nest 11: one hook run before any other of the platform's (Express middleware, Fastify onRequest hooks). */
  setOnRequestHook?(hook: (request: never, reply: never, done: () => void) => void): void;
}

type Next = (error?: unknown) => void;

interface ExpressApp {
  use(middleware: (req: IncomingMessage & { id?: unknown }, res: ServerResponse, next: Next) => void): unknown;
}

interface FastifyRequestLike {
  id: unknown;
}

interface FastifyApp {
  addHook(name: 'onRequest', hook: (request: FastifyRequestLike, reply: unknown, done: () => void) => void): unknown;
}

/**
 * pino-http (so nestjs-pino) takes `req.id` as the request's id when it is set: the correlation id
 * reaches pino's request logger with no option. Never overwrites an id another middleware set.
 */
function onExpress(app: ExpressApp, monitor: Monitor): void {
  const track = expressLoopsight({ monitor });
  app.use(function loopsight(req, res, next) {
    track(req, res, (error?: unknown) => {
      if (req.id === undefined) req.id = getCorrelationId();
      next(error);
    });
  });
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

type FastifyHook = (request: FastifyRequestLike, reply: unknown, done: () => void) => void;

/**
 * Nest registers middie (its middleware runner) before it creates any provider, so a hook added
 * now would run after Nest middleware (pino-http among them). Nest 11 runs its adapter's one
 * request hook before every other: the plugin's hook is taken from its addHook call and set there.
 * Nest 10 has no such hook: there, Nest middleware on Fastify runs before the scope opens.
 */
function onFastify(adapter: NestHttpAdapter, app: FastifyApp, monitor: Monitor): void {
  let first: FastifyHook | undefined;
  const setFirst = adapter.setOnRequestHook?.bind(adapter);
  const target =
    setFirst === undefined
      ? app
      : new Proxy(app, {
          get: (instance, key) =>
            key === 'addHook'
              ? (name: string, hook: FastifyHook) => {
                  if (name === 'onRequest' && first === undefined) first = hook;
                  else instance.addHook(name as 'onRequest', hook);
                }
              : Reflect.get(instance, key, instance),
        });
  // Called rather than register()ed, which avvio would defer past Nest's own plugins. It calls
  // back at once, and fails only on an invalid monitor, which monitorFor() already refused.
  fastifyLoopsight(target as never, { monitor }, (error?: Error) => {
    if (error) throw error;
  });
  if (setFirst !== undefined && first !== undefined) {
    const open = first;
    setFirst((request, reply, done) => open(request, reply, () => correlationAsRequestId(request, reply, done)));
  } else {
    app.addHook('onRequest', correlationAsRequestId);
  }
}

/**
 * Opens every request's scope on the platform under Nest, before the body parser and any Nest
 * middleware, guard, interceptor or pipe. Called while Nest creates the app's providers, when
 * the platform has no route or middleware of Nest's yet. False when the platform is unknown.
 */
export function mountOn(adapter: NestHttpAdapter, monitor: Monitor): boolean {
  const type = adapter.getType();
  if (type === 'express') onExpress(adapter.getInstance() as ExpressApp, monitor);
  else if (type === 'fastify') onFastify(adapter, adapter.getInstance() as FastifyApp, monitor);
  else return false;
  return true;
}
