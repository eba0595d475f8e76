import { AsyncResource } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { warning } from '@loopsight/options';
import { PRESSED, RESPONSE_SCOPE, responsePort } from './backpressure.js';
import { NO_SLOT } from './inflight.js';
import type { MonitorInternals } from './monitor.js';
import { scopeStore } from './store.js';
import type { RequestScope } from './types.js';

/** Learns the route template of a request; called lazily, because Express and Koa know it only after routing. */
export type RouteResolver<A> = (arg: A) => string | undefined;

/**
 * The scope of an HTTP request. `route` is resolved on first read after the router has matched,
 * and at the latest when the response ends; then it is kept.
 */
export class HttpScope<A> implements RequestScope {
  readonly correlationId: string;
  readonly method: string;
  readonly startedAt: number;
  #route: string | undefined;
  #resolve: RouteResolver<A> | undefined;
  #arg: A | undefined;
  readonly #handle: MonitorInternals;
  #slot = NO_SLOT;
  #t0 = 0;

  /** `route(routeArg)` names the route template once the framework knows it. */
  constructor(handle: MonitorInternals, correlationId: string, req: IncomingMessage, route: RouteResolver<A>, routeArg: A) {
    this.correlationId = correlationId;
    this.method = req.method as string;
    this.startedAt = Date.now();
    this.#resolve = route;
    this.#arg = routeArg;
    this.#handle = handle;
  }

  get route(): string | undefined {
    if (this.#route === undefined && this.#resolve !== undefined) {
      try {
        this.#route = this.#resolve(this.#arg as A);
      } catch (error) {
        // Read from res.on('close'), listeners and reports: a throw there would be uncaught.
        // The route stays unknown (__unrouted__), and the resolver is not asked again.
        this.#resolve = undefined;
        this.#arg = undefined;
        this.#handle.reportError('the route resolver threw', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'route-resolver' }));
      }
    }
    return this.#route;
  }

  /**
   * Fixes the route and lets go of the framework objects. Scopes outlive their request in every
   * async resource made during it; holding req/res/ctx that long showed as +30 MB of peak RSS
   * under load (Fastify hello route), so they are dropped when the response ends.
   */
  settle(): void {
    void this.route;
    this.#resolve = undefined;
    this.#arg = undefined;
  }

  /**
   * Registers the scope in flight, starts its clock, and ends it when the response closes, unless
   * `handedOver()` says an adapter took the request over (its scope reports it).
   */
  open(res: ServerResponse, handedOver?: () => boolean): this {
    this.#t0 = performance.now();
    this.#slot = this.#handle.begin(this);
    // Read by the response write patch only when a write is told to wait (backpressure.ts).
    if (this.#handle.backpressure !== undefined) (res as ServerResponse & { [RESPONSE_SCOPE]?: unknown })[RESPONSE_SCOPE] = this;
    res.on('close', () => {
      if (handedOver?.()) return;
      this.end(res.statusCode, !res.writableFinished);
    });
    return this;
  }

  /** The response closed: the request is over. */
  end(status: number, aborted: boolean): void {
    this.settle();
    this.#handle.end(this, this.#slot, this.#t0, status, aborted);
  }

  /** An adapter took the request over: out of flight, without a 'request' event. */
  drop(): void {
    this.settle();
    this.#handle.drop(this, this.#slot);
  }

  /** A write of this request's response was told to wait: the monitor's backpressure watch takes it. */
  [PRESSED](res: ServerResponse, below: (...args: never[]) => unknown): void {
    this.#handle.backpressure?.pressed(res, this, responsePort, below);
  }

  /** The monitor binds req/res emitters to the scope (`bindEmitters`). */
  get bindsEmitters(): boolean {
    return this.#handle.options.bindEmitters;
  }

  toJSON(): RequestScope {
    const json: RequestScope = { correlationId: this.correlationId, method: this.method, startedAt: this.startedAt };
    const route = this.route;
    if (route !== undefined) json.route = route;
    return json;
  }
}

/**
 * Makes every listener of `emitter` run in the async context that is current now. The request's
 * and response's events come from the socket's context, so a listener the handler adds itself
 * (`req.on('end')`, `res.on('finish')`) would not see the scope. Body parsers (raw-body, Fastify's,
 * co-body) and on-finished bind their own callbacks already, so this is opt-in: it costs about 2%
 * of CPU per request on a hello route (measured, Express 5, Node 20).
 */
function bindEmitter(emitter: EventEmitter, resource: AsyncResource): void {
  const emit = emitter.emit;
  emitter.emit = function boundEmit(this: EventEmitter, ...args: Parameters<EventEmitter['emit']>) {
    return resource.runInAsyncScope(emit, this, ...args);
  };
}

/**
 * Opens the scope of one HTTP request for an adapter: registers it in flight, ends it when the
 * response finishes or the connection closes (aborted requests too), and calls `next` inside it.
 * Returns what `next` returns, so Koa's promise chain stays intact.
 */
export function trackRequest<A, R>(
  scope: HttpScope<A>,
  req: IncomingMessage,
  res: ServerResponse,
  next: () => R,
  replacing?: RequestScope,
): R {
  scope.open(res);
  // Taking over an ambient scope in the context it was entered in: replace it there too, so that
  // what runs after `next` in that synchronous run (another 'request' listener) sees one scope.
  if (replacing !== undefined && scopeStore.getStore() === replacing) scopeStore.enterWith(scope);
  if (!scope.bindsEmitters) return scopeStore.run(scope, next);
  return scopeStore.run(scope, enterBound, req, res, next);
}

/**
 * Marks a request whose scope was entered ambiently (by @loopsight/register, from Node's HTTP
 * server diagnostics channel) so that an adapter mounted as well takes it over: one scope and one
 * 'request' event per request. `Symbol.for`: the preload's copy of core and the adapter's (the ESM
 * and CJS builds) must both see it.
 */
const AMBIENT = Symbol.for('loopsight.core.ambient.v1');

/** An ambient request scope, as an adapter sees it. */
export interface AmbientScope {
  readonly scope: RequestScope;
  /** Ends the ambient scope without a 'request' event (the adapter's scope reports the request); returns its id. */
  adopt(): string;
}

/** The ambient scope of a request, if @loopsight/register opened one. */
export function ambientOf(req: IncomingMessage): AmbientScope | undefined {
  const found = (req as IncomingMessage & { [AMBIENT]?: AmbientScope })[AMBIENT];
  return typeof found === 'object' && found !== null && typeof found.adopt === 'function' ? found : undefined;
}

/**
 * Opens the scope of one request where there is no callback to run it around: Node's
 * 'http.server.request.start' channel is published synchronously just before the server emits
 * 'request', so `enterWith` puts the scope on the rest of that synchronous run, the handler
 * included, and on every async resource made from it (checked on Node 20 and 24,
 * packages/register/test/preload.test.ts).
 */
export function enterRequest<A>(scope: HttpScope<A>, req: IncomingMessage, res: ServerResponse): void {
  let adopted = false;
  const correlationId = scope.correlationId;
  scope.open(res, () => adopted);
  const ambient: AmbientScope = {
    scope,
    adopt: () => {
      if (!adopted) {
        adopted = true;
        scope.drop();
      }
      return correlationId;
    },
  };
  Object.defineProperty(req, AMBIENT, { value: ambient, configurable: true });
  scopeStore.enterWith(scope);
}

function enterBound<R>(req: IncomingMessage, res: ServerResponse, next: () => R): R {
  const resource = new AsyncResource('loopsight.request');
  bindEmitter(req, resource);
  bindEmitter(res, resource);
  return next();
}
