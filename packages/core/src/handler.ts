import type { IncomingMessage, ServerResponse } from 'node:http';
import { warning } from '@loopsight/options';
import { acceptIncoming } from './incoming.js';
import { internals, type MonitorInternals } from './monitor.js';
import { idRefusal } from './options.js';
import { type AmbientScope, ambientOf, enterRequest, HttpScope, type RouteResolver, trackRequest } from './request.js';
import type { Exporter, Monitor, ResolvedShed, ShedInfo } from './types.js';

/** Opens the scope of one request; what an adapter calls from its middleware or hook. */
export type HttpHandler<A> = <R>(req: IncomingMessage, res: ServerResponse, frameworkArg: A, next: () => R) => R;

/** Turns outbound propagation on for `header`; returns the function that turns it off (context's `enablePropagation`). */
export type EnablePropagation = (header: string, onError: (what: string, error: unknown) => void) => () => void;

/** How an adapter plugs in: where the route template comes from, and how to write through the framework. */
export interface HttpGlue<A> {
  /** Reads the route template from the framework object passed per request; called lazily. */
  route: RouteResolver<A>;
  /** Sets the echoed header through the framework, where that is cheaper than `res.setHeader`. */
  setHeader?: (frameworkArg: A, name: string, value: string) => void;
  /** Writes a shed request's answer through the framework; default: straight on the Node response. */
  respond?: (frameworkArg: A, answer: ShedAnswer) => void;
  /** Outbound propagation (`enablePropagation` of @loopsight/context), turned on when `correlation.propagate` is. */
  propagate?: EnablePropagation;
  /**
   * An id the framework's own request-id middleware already gave the request (Hono's `requestId`),
   * so that both agree. Used only when it passes the checks an incoming header must pass.
   */
  incomingId?: (frameworkArg: A) => unknown;
}

/** The response to a shed request, built by core; adapters only write it. */
export interface ShedAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The path of a request URL: the query string never reaches a callback, a label or a log. */
export function pathOf(url: string | undefined): string {
  const value = url ?? '/';
  const q = value.indexOf('?');
  return q === -1 ? value : value.slice(0, q);
}

function respondRaw(res: ServerResponse, answer: ShedAnswer): void {
  if (res.headersSent) return;
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

/**
 * The one shedding path: whether `req` is shed now and, if so, its answer (status, Retry-After,
 * body, the echoed id) and what `shed.onShed` is told. Undefined: serve it.
 */
function shedDecision(
  monitor: MonitorInternals,
  shed: ResolvedShed,
  req: IncomingMessage,
  id: string,
  header: string,
): { answer: ShedAnswer; info: ShedInfo } | undefined {
  const path = pathOf(req.url);
  const reason = monitor.shedReason(req, path);
  if (reason === undefined) return undefined;
  const { type, text } = shed.body(reason);
  return {
    answer: {
      status: shed.status,
      headers: { 'retry-after': String(shed.retryAfterSeconds), 'content-type': type, [header]: id },
      body: text,
    },
    info: { reason, method: req.method ?? '', path, correlationId: id },
  };
}

// Nobody stops the monitor of an Express or Koa app; propagation must not keep it (and its app)
// alive, and goes when it goes.
const released = new FinalizationRegistry<() => void>((disable) => disable());

/**
 * Outbound propagation as a monitor component: on while the monitor runs, or until it is collected.
 * For adapters that are not HTTP (queue workers): `monitor.attach(propagation(enablePropagation, header))`.
 */
export function propagation(enable: EnablePropagation, header: string): Exporter {
  let disable: (() => void) | undefined;
  const token = {};
  return {
    name: 'loopsight:propagation',
    start(monitor) {
      const ref = new WeakRef(monitor);
      disable = enable(header, (what, error) => ref.deref()?.reportError(what, error));
      released.register(monitor, disable, token);
    },
    stop() {
      released.unregister(token);
      disable?.();
      disable = undefined;
    },
  };
}

/**
 * Everything an adapter does per request, set up once per monitor: accept or generate the id,
 * echo it, shed the request while the process is overloaded, open the scope, and (with
 * correlation.propagate) carry the id on outbound requests.
 */
export function createHttpHandler<A>(monitor: Monitor, glue: HttpGlue<A>): HttpHandler<A> {
  const handle = internals(monitor);
  const config = handle.options.correlation;
  if (config.propagate && glue.propagate) monitor.attach(propagation(glue.propagate, config.header));
  const { echo, header } = config;
  const { route, setHeader, respond, incomingId } = glue;
  const { shed } = handle.options;
  return (req, res, frameworkArg, next) => {
    let id: string;
    let ambient: AmbientScope | undefined;
    try {
      ambient = ambientOf(req);
      const given = ambient === undefined ? incomingId?.(frameworkArg) : undefined;
      // Under @loopsight/register the id was accepted (and counted) already: keep it. An id the
      // framework's own request-id middleware set is taken when it passes the same checks.
      id =
        ambient !== undefined
          ? ambient.adopt()
          : given !== undefined && idRefusal(given, config.validate, handle) === undefined
            ? (given as string)
            : acceptIncoming(req, config, handle);
      if (echo) {
        if (setHeader) setHeader(frameworkArg, header, id);
        else if (!res.headersSent) res.setHeader(header, id);
      }
    } catch (error) {
      // Observability never fails a request: serve it untracked.
      handle.reportError('reading the correlation id failed', warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'correlation-id' }));
      return next();
    }
    if (shed) {
      const shedding = shedDecision(handle, shed, req, id, header);
      if (shedding !== undefined) {
        // Answered before any handler runs, with the id echoed so the refusal can be traced.
        try {
          if (respond) respond(frameworkArg, shedding.answer);
          else respondRaw(res, shedding.answer);
        } catch (error) {
          handle.reportError('answering a shed request failed', warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'shed-answer' }));
        }
        handle.shed(shedding.info);
        return undefined as never;
      }
    }
    return trackRequest(new HttpScope(handle, id, req, route, frameworkArg), req, res, next, ambient?.scope);
  };
}

/**
 * What @loopsight/register calls from Node's 'http.server.request.start' channel: the same id
 * handling as an adapter (accept or generate, echo, propagate), with the scope entered on the
 * current synchronous run instead of around a callback. No shedding: the application's handler
 * runs after this and would write a second response. An adapter mounted as well takes the
 * request over (`createHttpHandler`).
 */
export function createAmbientHandler(
  monitor: Monitor,
  glue: HttpGlue<IncomingMessage>,
): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = internals(monitor);
  const config = handle.options.correlation;
  if (config.propagate && glue.propagate) monitor.attach(propagation(glue.propagate, config.header));
  const { echo, header } = config;
  const { route } = glue;
  return (req, res) => {
    let id: string;
    try {
      id = acceptIncoming(req, config, handle);
      if (echo && !res.headersSent) res.setHeader(header, id);
    } catch (error) {
      handle.reportError('reading the correlation id failed', warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'correlation-id' }));
      return;
    }
    enterRequest(new HttpScope(handle, id, req, route, req), req, res);
  };
}
