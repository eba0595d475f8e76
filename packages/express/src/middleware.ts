import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHttpHandler } from '@loopsight/context';
import { type AdapterOptions, type Monitor, monitorFor } from '@loopsight/core';
import { type ExpressRequest, expressRoute } from './route.js';

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
  const handle = createHttpHandler(monitor, { route: expressRoute });
  monitor.start();
  // Named, so that tracing tools that name spans after middleware show "loopsight".
  const middleware = function loopsight(req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void): void {
    handle(req, res, req as ExpressRequest, next);
  };
  return Object.assign(middleware, { monitor });
}
