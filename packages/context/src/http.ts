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
  /** Answers a shed request through the framework; default: straight on the Node response. */
  respond?: (frameworkArg: A, answer: ShedAnswer) => void;
}

/** The response to a shed request. */
export interface ShedAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function respondRaw(res: ServerResponse, answer: ShedAnswer): void {
  if (res.headersSent) return;
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

/**
 * Everything an adapter does per request, set up once per monitor: accept or generate the id,
 * echo it, open the scope, and (with correlation.propagate) carry it on outbound requests.
 */
export function createHttpHandler<A>(monitor: Monitor, glue: HttpGlue<A>): HttpHandler<A> {
  const config = monitor.options.correlation;
  if (config.propagate) monitor.attach(propagation(config.header));
  const { echo, header } = config;
  const { route, setHeader, respond } = glue;
  const { shed } = monitor.options;
  const retryAfter = shed ? String(shed.retryAfterSeconds) : '';
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
    if (shed) {
      const reason = monitor._shedReason(req);
      if (reason !== undefined) {
        // Answered before any handler runs, with the id echoed so the refusal can be traced.
        const { type, text } = shed.body(reason);
        const answer = { status: shed.status, headers: { 'retry-after': retryAfter, 'content-type': type, [header]: id }, body: text };
        try {
          if (respond) respond(frameworkArg, answer);
          else respondRaw(res, answer);
        } catch (error) {
          monitor.reportError('answering a shed request failed', error);
        }
        const url = req.url ?? '/';
        const q = url.indexOf('?');
        monitor._shed({ reason, method: req.method ?? '', path: q === -1 ? url : url.slice(0, q), correlationId: id });
        return undefined as never;
      }
    }
    return trackRequest(monitor, id, req, res, route, frameworkArg, next);
  };
}
