import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Monitor } from '@loopsight/core';
import { load } from './load.js';

/**
 * Node's own channels: published by every `node:http` and `node:https` server, whatever framework
 * (or none) sits on it, synchronously just before the server emits 'request'.
 */
const HTTP_REQUEST_START = 'http.server.request.start';
/** Fastify 5's tracing channel around a route handler; its message carries the route template. */
const FASTIFY_HANDLER_START = 'tracing:fastify.request.handler:start';

const ROUTE = Symbol('loopsight.register.route');

interface RequestStart {
  request: IncomingMessage;
  response: ServerResponse;
  server: Server;
}

type Routed = IncomingMessage & { [ROUTE]?: string; route?: { path?: unknown }; baseUrl?: string };

/**
 * The route template, where a framework makes it known without an adapter: Fastify through its
 * channel; Express on `req.route` when the route is not under a mounted router (`req.baseUrl`
 * holds the matched URL, ids and all, so it is never used). Otherwise undefined: `__unrouted__`.
 */
function routeOf(req: Routed): string | undefined {
  const fromChannel = req[ROUTE];
  if (fromChannel !== undefined) return fromChannel;
  const path = req.route?.path;
  return typeof path === 'string' && !req.baseUrl ? path : undefined;
}

function onFastifyHandler(message: unknown): void {
  const { request, route } = message as { request?: { raw?: Routed }; route?: { url?: unknown } };
  const raw = request?.raw;
  if (raw !== undefined && typeof route?.url === 'string') raw[ROUTE] = route.url;
}

/**
 * Opens a scope for every incoming HTTP request of the process, from Node's diagnostics channel.
 * `ignore` is a server whose requests are not the application's (the metrics port); `each` runs
 * before every scope is opened.
 */
export function watchHttp(monitor: Monitor, ignore: () => Server | undefined, each?: () => void): void {
  const diagnosticsChannel = load.channels();
  const handle = load.adapterKit().createAmbientHandler(monitor, { route: routeOf, propagate: load.context().enablePropagation });
  // A throw from a subscriber would surface as an uncaught exception on the next tick: contained.
  diagnosticsChannel.subscribe(HTTP_REQUEST_START, (message) => {
    try {
      const { request, response, server } = message as RequestStart;
      if (server !== undefined && server === ignore()) return;
      each?.();
      handle(request, response);
    } catch (error) {
      monitor.reportError(
        'opening a request scope failed',
        load.options().warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'preload:scope' }),
      );
    }
  });
  diagnosticsChannel.subscribe(FASTIFY_HANDLER_START, (message) => {
    try {
      onFastifyHandler(message);
    } catch (error) {
      monitor.reportError(
        "reading Fastify's route failed",
        load.options().warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'preload:fastify-route' }),
      );
    }
  });
}
