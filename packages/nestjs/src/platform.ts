import type { IncomingMessage, ServerResponse } from 'node:http';
import { getCorrelationId } from '@loopsight/context';
import type { Monitor } from '@loopsight/core';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight as fastifyLoopsight } from '@loopsight/fastify';
import fp from 'fastify-plugin';

/** The part of Nest's `AbstractHttpAdapter` read here; Nest's own type would tie us to one @nestjs/core. */
export interface NestHttpAdapter {
  getType(): string;
  getInstance(): unknown;
}

type Next = (error?: unknown) => void;

interface ExpressApp {
  use(middleware: (req: IncomingMessage & { id?: unknown }, res: ServerResponse, next: Next) => void): unknown;
}

interface FastifyRequestLike {
  id: unknown;
}

interface FastifyApp {
  register(plugin: unknown, options?: unknown): unknown;
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
const requestIds = fp(
  (app: FastifyApp, _options: unknown, done: () => void) => {
    app.addHook('onRequest', (request, _reply, next) => {
      const id = getCorrelationId();
      if (id !== undefined) request.id = id;
      next();
    });
    done();
  },
  { name: '@loopsight/nestjs', dependencies: ['@loopsight/fastify'] },
);

function onFastify(app: FastifyApp, monitor: Monitor): void {
  // Queued now, loaded before Nest's own plugins (middie) at init: the scope opens in the first
  // onRequest hook after Nest's CORS and routing checks, before any Nest middleware.
  app.register(fastifyLoopsight, { monitor });
  app.register(requestIds);
}

/**
 * Opens every request's scope on the platform under Nest, before the body parser and any Nest
 * middleware, guard, interceptor or pipe. Called while Nest creates the app's providers, when
 * the platform has no route or middleware of Nest's yet. False when the platform is unknown.
 */
export function mountOn(adapter: NestHttpAdapter, monitor: Monitor): boolean {
  const type = adapter.getType();
  if (type === 'express') onExpress(adapter.getInstance() as ExpressApp, monitor);
  else if (type === 'fastify') onFastify(adapter.getInstance() as FastifyApp, monitor);
  else return false;
  return true;
}
