import type { IncomingMessage, ServerResponse } from 'node:http';
import { enablePropagation } from '@loopsight/context';
import type { AdapterOptions, Monitor } from '@loopsight/core';
import { createHttpHandler, internals, monitorFor } from '@loopsight/core/adapter';
import { type ExpressRequest, expressRoute } from './route.js';

interface RouterFlags {
  strict?: unknown;
  caseSensitive?: unknown;
}

/** Express 5 keeps its router at `app.router`, Express 4 at `app._router`. */
interface ExpressApp {
  enabled?(setting: string): boolean;
  router?: RouterFlags;
  _router?: RouterFlags;
}

const ROUTER_SETTINGS = [
  ['strict routing', 'strict'],
  ['case sensitive routing', 'caseSensitive'],
] as const;

/**
 * Express fixes its router's `strict routing` and `case sensitive routing` when the router is
 * made, by the app's first `app.use()`: a setting changed after mounting loopsight first is
 * silently ignored (true of any first middleware). The settings and the router disagree then;
 * say so once, with the fix.
 */
function checkRouterSettings(app: ExpressApp | undefined, warn: (message: string) => void): void {
  if (typeof app?.enabled !== 'function') return;
  const router = Object.hasOwn(app, '_router') ? app._router : app.router;
  if (router === undefined) return;
  for (const [setting, flag] of ROUTER_SETTINGS) {
    const wanted = app.enabled(setting);
    if (Boolean(router[flag]) === wanted) continue;
    warn(
      `loopsight: app.set('${setting}', ${wanted}) came after the first app.use() (loopsight's), when Express had already made its router; Express ignores it. Call app.set() before app.use(loopsight()).`,
    );
  }
}

export type ExpressMiddleware = ((req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void) & {
  /** The monitor this middleware reports to. */
  readonly monitor: Monitor;
};

/**
 * Express 4 and 5 middleware: gives every request a correlation id and a scope, and records its
 * route template. Mount it first.
 *
 * @example
 * const app = express();
 * app.use(loopsight());
 * app.get('/users/:id', (req, res) => res.json({ id: getCorrelationId() }));
 */
export function loopsight(options?: AdapterOptions): ExpressMiddleware {
  const { monitor } = monitorFor(options);
  const handle = createHttpHandler(monitor, { route: expressRoute, propagate: enablePropagation });
  const { logger } = internals(monitor).options;
  monitor.start();
  let checked = false;
  const warn = (message: string) => {
    try {
      logger.warn(message);
    } catch {
      // A broken logger must not fail the request.
    }
  };
  // Named, so that tracing tools that name spans after middleware show "loopsight".
  const middleware = function loopsight(req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void): void {
    if (!checked) {
      checked = true;
      try {
        checkRouterSettings((req as { app?: ExpressApp }).app, warn);
      } catch {
        // A look at Express's internals, nothing the request depends on.
      }
    }
    handle(req, res, req as ExpressRequest, next);
  };
  return Object.assign(middleware, { monitor });
}
