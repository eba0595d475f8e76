import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Monitor, type RouteResolver, trackRequest } from '@loopsight/core';
import { acceptIncoming } from './incoming.js';
import { propagation } from './propagation.js';

/** Opens the scope of one request; what an adapter calls from its middleware or hook. */
export type HttpHandler<A> = <R>(req: IncomingMessage, res: ServerResponse, frameworkArg: A, next: () => R) => R;

/** How an adapter plugs in: where the route template comes from, and how to set a header. */
export interface HttpGlue<A> {
  /** Reads the route template from the framework object passed per request; called lazily. */
  route: RouteResolver<A>;
  /** Sets the echoed header through the framework, where that is cheaper than `res.setHeader`. */
  setHeader?: (frameworkArg: A, name: string, value: string) => void;
}

/**
 * Everything an adapter does per request, set up once per monitor: accept or generate the id,
 * echo it, open the scope, and (with correlation.propagate) carry it on outbound requests.
 */
export function createHttpHandler<A>(monitor: Monitor, glue: HttpGlue<A>): HttpHandler<A> {
  const config = monitor.options.correlation;
  if (config.propagate) monitor.attach(propagation(config.header));
  const { echo, header } = config;
  const { route, setHeader } = glue;
  return (req, res, frameworkArg, next) => {
    let id: string;
    try {
      id = acceptIncoming(req, config, monitor);
      if (echo) {
        if (setHeader) setHeader(frameworkArg, header, id);
        else if (!res.headersSent) res.setHeader(header, id);
      }
    } catch (error) {
      // Observability never fails a request: serve it untracked.
      monitor.reportError('reading the correlation id failed', error);
      return next();
    }
    return trackRequest(monitor, id, req, res, route, frameworkArg, next);
  };
}
