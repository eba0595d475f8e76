import type { IncomingMessage, ServerResponse } from 'node:http';
import { enablePropagation } from '@loopsight/context';
import type { AdapterOptions, Monitor } from '@loopsight/core';
import { createHttpHandler, monitorFor, type ShedAnswer } from '@loopsight/core/adapter';

/** The parts of Koa's context loopsight reads; @koa/router sets `_matchedRoute` after matching. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
  status?: number;
  body?: unknown;
  set?: (headers: Record<string, string>) => void;
  _matchedRoute?: unknown;
  routerPath?: unknown;
}

export type KoaMiddleware = ((ctx: KoaContextLike, next: () => Promise<unknown>) => Promise<unknown>) & {
  /** The monitor this middleware reports to. */
  readonly monitor: Monitor;
};

// Through Koa's context, so that Koa writes the response as it does for any other.
function koaRespond(ctx: KoaContextLike, answer: ShedAnswer): void {
  ctx.status = answer.status;
  ctx.set?.(answer.headers);
  ctx.body = answer.body;
}

// Only _matchedRoute: @koa/router reads ctx.routerPath as the path to route, which can be the raw path.
function koaRoute(ctx: KoaContextLike): string | undefined {
  const route = ctx._matchedRoute;
  return route === undefined ? undefined : String(route);
}

/**
 * Koa 2 and 3 middleware: gives every request a correlation id and a scope, and records the route
 * template @koa/router matched. Mount it first.
 *
 * @example
 * const app = new Koa();
 * app.use(loopsight());
 * app.use(router.routes());
 */
export function loopsight(options?: AdapterOptions): KoaMiddleware {
  const { monitor } = monitorFor(options);
  const handle = createHttpHandler(monitor, { route: koaRoute, respond: koaRespond, propagate: enablePropagation });
  monitor.start();
  const middleware = (ctx: KoaContextLike, next: () => Promise<unknown>): Promise<unknown> => handle(ctx.req, ctx.res, ctx, next);
  return Object.assign(middleware, { monitor });
}
