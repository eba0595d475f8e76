import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Monitor, type RouteResolver, trackRequest } from '@loopsight/core';
import { acceptIncoming } from './incoming.js';
import { propagation } from './propagation.js';

/** Opens the scope of one request; what an adapter calls from its middleware or hook. */
export type HttpHandler = <A, R>(req: IncomingMessage, res: ServerResponse, routeOf: RouteResolver<A>, routeArg: A, next: () => R) => R;

/**
 * Everything an adapter does per request, set up once per monitor: accept or generate the id,
 * echo it, open the scope, and (with correlation.propagate) carry it on outbound requests.
 */
export function createHttpHandler(monitor: Monitor): HttpHandler {
  const config = monitor.options.correlation;
  if (config.propagate) monitor.attach(propagation(config.header));
  const { echo, header } = config;
  return (req, res, routeOf, routeArg, next) => {
    let id: string;
    try {
      id = acceptIncoming(req, config, monitor);
      if (echo && !res.headersSent) res.setHeader(header, id);
    } catch (error) {
      // Observability never fails a request: serve it untracked.
      monitor.reportError('reading the correlation id failed', error);
      return next();
    }
    return trackRequest(monitor, id, req, res, routeOf, routeArg, next);
  };
}
