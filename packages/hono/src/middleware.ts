import type { IncomingMessage, ServerResponse } from 'node:http';
import { enablePropagation } from '@loopsight/context';
import { type AdapterOptions, currentScope, type Monitor } from '@loopsight/core';
import { createHttpHandler, internals, monitorFor, type ShedAnswer } from '@loopsight/core/adapter';
import type { Context, MiddlewareHandler, Next } from 'hono';
import { type HonoRequestLike, honoRoute } from './route.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The request's correlation id: loopsight's, the same `hono/request-id` declares. */
    requestId: string;
  }
}

/** What `loopsight()` returns: a Hono middleware, with the Monitor it reports to as `.monitor`. */
export type HonoMiddleware = MiddlewareHandler & {
  /** The monitor this middleware reports to. */
  readonly monitor: Monitor;
};

/** What @hono/node-server passes as `c.env`: the Node request and response. */
interface NodeBindings {
  incoming?: IncomingMessage;
  outgoing?: ServerResponse;
}

function honoRouteOf(c: Context): string | undefined {
  return honoRoute(c.req as unknown as HonoRequestLike);
}

// Through Hono's context, so that the answer goes out like any other response Hono makes.
function honoRespond(c: Context, answer: ShedAnswer): void {
  c.res = new Response(answer.body, { status: answer.status, headers: answer.headers });
}

// hono/request-id, when it ran first, has set the id its handlers and logs use: loopsight adopts it.
function honoRequestId(c: Context): unknown {
  return c.get('requestId');
}

/**
 * Hono 4 middleware for apps served by @hono/node-server: gives every request a correlation id and
 * a scope, and records the route template Hono matched. Mount it first (after `requestId()` if
 * the app uses it). `c.get('requestId')` is the correlation id.
 *
 * @example
 * const app = new Hono();
 * app.use(loopsight());
 * app.get('/users/:id', (c) => c.json({ id: getCorrelationId() }));
 * serve({ fetch: app.fetch, port: 3000 });
 */
export function loopsight(options?: AdapterOptions): HonoMiddleware {
  const { monitor } = monitorFor(options);
  const handle = createHttpHandler(monitor, {
    route: honoRouteOf,
    respond: honoRespond,
    propagate: enablePropagation,
    incomingId: honoRequestId,
  });
  const { logger, correlation } = internals(monitor).options;
  monitor.start();
  let warned = false;
  const untracked = () => {
    if (warned) return;
    warned = true;
    try {
      logger.warn(
        'loopsight: this Hono app is not served by @hono/node-server (c.env.incoming is missing), so loopsight cannot see its requests: they are served untracked',
      );
    } catch {
      // A broken logger must not fail the request.
    }
  };
  const middleware = function loopsight(c: Context, next: Next): Promise<void> {
    const { incoming, outgoing } = (c.env ?? {}) as NodeBindings;
    if (incoming === undefined || outgoing === undefined || typeof outgoing.on !== 'function') {
      untracked();
      return next();
    }
    const given = c.get('requestId');
    const enter = () => {
      const id = currentScope()?.correlationId;
      if (id !== undefined && id !== given) {
        c.set('requestId', id);
        // requestId() has put its own, refused, id in Hono's headers, which win over Node's.
        if (given !== undefined && correlation.echo) c.header(correlation.header, id);
      }
      return next();
    };
    // undefined when the request was shed: c.res holds the answer.
    return handle(incoming, outgoing, c, enter) ?? Promise.resolve();
  };
  return Object.assign(middleware, { monitor });
}
