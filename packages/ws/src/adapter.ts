import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { enablePropagation } from '@loopsight/context';
import { currentScope, type Exporter, type Monitor, type RequestScope, ROUTE_OTHER } from '@loopsight/core';
import {
  acceptIncoming,
  type ConnectionCounter,
  internals,
  isThenable,
  type MonitorInternals,
  monitorFor,
  pathOf,
  propagation,
  runInScope,
  type WriterPort,
  type WriterWatch,
} from '@loopsight/core/adapter';
import { func, invalidOption, isPlainObject, positive, type Resolved, resolveShape, type Shape, warning } from '@loopsight/options';
import type { LoopsightWsOptions, WebSocketLike, WebSocketServerLike, WsData } from './types.js';

/** Distinct message kinds kept before the rest are `__other__`: as many as an exporter's route labels. */
const DEFAULT_MAX_MESSAGE_NAMES = 100;

type Listener = (...args: unknown[]) => unknown;
type Wrapped = Listener & { listener: Listener; [WRAPPED]: true };

/** What a socket carries while it is instrumented: its connection's id and upgrade path. */
interface SocketState {
  readonly id: string;
  readonly path: string;
  readonly adapter: WsAdapter;
}

// On the socket itself, so nothing outlives it: no map of sockets anywhere.
const STATE = Symbol('loopsight.ws.socket');
const WRAPPED = Symbol('loopsight.ws.wrapped');
const PATCHED = ['emit', 'on', 'addListener', 'prependListener', 'send'] as const;

type Socket = WebSocketLike & Record<string | symbol, unknown> & { [STATE]?: SocketState };

/** The net socket under a ws WebSocket: what its frames are written to, and what emits 'drain'. */
type RawSocket = NodeJS.EventEmitter & { readonly writableNeedDrain?: boolean; readonly writableHighWaterMark?: number };
const rawOf = (socket: Socket): RawSocket | undefined => socket._socket as RawSocket | undefined;

/** How the backpressure watch reads a WebSocket: `bufferedAmount`, its net socket's mark and 'drain'. */
function wsPort(socket: Socket): WriterPort {
  const raw = rawOf(socket) as RawSocket;
  return {
    buffered: () => Number(socket.bufferedAmount ?? 0),
    highWaterMark: raw.writableHighWaterMark ?? 16_384,
    drain: raw,
    close: socket as unknown as NodeJS.EventEmitter,
  };
}

/**
 * The promises returned by the listeners of the message being emitted: set around the synchronous
 * emit, so a listener's wrapper knows where its promise goes. Nested emits save and restore it.
 */
let pending: PromiseLike<unknown>[] | undefined;

/** A 'message' listener that hands its promise (an async handler's) to the message's scope. */
function capture(listener: Listener): Wrapped {
  const wrapped = function loopsightMessage(this: unknown, ...args: unknown[]): unknown {
    const result = Reflect.apply(listener, this, args);
    if (pending !== undefined && isThenable(result)) pending.push(result);
    return result;
  } as Wrapped;
  // EventEmitter's removeListener(listener) matches `.listener`: the user's function still removes it.
  wrapped.listener = listener;
  wrapped[WRAPPED] = true;
  return wrapped;
}

/** What `removeListener('message', fn)` must remove: `fn`, or our wrapper of it or of its `once` wrapper. */
function registeredFor(socket: Socket, fn: unknown): unknown {
  const raw = (socket as unknown as { rawListeners(e: string): Listener[] }).rawListeners('message');
  for (let i = raw.length - 1; i >= 0; i--) {
    const candidate = raw[i] as Partial<Wrapped>;
    if (candidate === fn || candidate.listener === fn) return candidate;
    if (candidate[WRAPPED] === true && (candidate.listener as Partial<Wrapped> | undefined)?.listener === fn) return candidate;
  }
  return fn;
}

let adapters = 0;

class WsAdapter {
  readonly monitor: Monitor;
  readonly #handle: MonitorInternals;
  readonly #owned: boolean;
  readonly #messageName: LoopsightWsOptions['messageName'];
  readonly #maxNames: number;
  readonly #names = new Set<string>();
  readonly #ids = new WeakMap<IncomingMessage, string>();
  readonly #counter: ConnectionCounter;
  readonly #watch: WriterWatch | undefined;
  #wss: WebSocketServerLike | undefined;
  #active = false;

  constructor(wss: WebSocketServerLike, monitor: Monitor, owned: boolean, options: Resolved<typeof WS_SHAPE>) {
    this.monitor = monitor;
    this.#handle = internals(monitor);
    this.#owned = owned;
    this.#wss = wss;
    this.#messageName = options.messageName;
    this.#maxNames = options.maxMessageNames;
    this.#counter = this.#handle.countConnections();
    this.#watch = this.#handle.backpressure;
  }

  /** Listens to the server: on monitor.start(), and again after a stop and start. */
  install(): void {
    const wss = this.#wss;
    if (this.#active || wss === undefined) return;
    this.#active = true;
    wss.on('headers', this.#onHeaders);
    // First, so that the application's 'connection' listener adds its 'message' listeners to an instrumented socket.
    const prepend = (wss as { prependListener?: WebSocketServerLike['on'] }).prependListener;
    if (typeof prepend === 'function') prepend.call(wss, 'connection', this.#onConnection);
    else wss.on('connection', this.#onConnection);
    wss.on('close', this.#onClose);
  }

  /** Lets go of the server and of the sockets it still has; their messages run unscoped. */
  release(): void {
    const wss = this.#wss;
    if (!this.#active || wss === undefined) return;
    this.#active = false;
    wss.removeListener('headers', this.#onHeaders);
    wss.removeListener('connection', this.#onConnection);
    wss.removeListener('close', this.#onClose);
    for (const socket of wss.clients ?? []) {
      const s = socket as Socket;
      if (s[STATE]?.adapter !== this) continue;
      for (const name of PATCHED) delete s[name];
      delete s[STATE];
    }
  }

  // The handshake: the id is chosen here, from the upgrade request, so that it can be echoed.
  readonly #onHeaders = (headers: string[], req: IncomingMessage): void => {
    try {
      const config = this.#handle.options.correlation;
      const id = acceptIncoming(req, config, this.#handle);
      this.#ids.set(req, id);
      if (config.echo && Array.isArray(headers)) headers.push(`${config.header}: ${id}`);
    } catch (error) {
      this.#handle.reportError('reading the correlation id failed', warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'ws:headers' }));
    }
  };

  readonly #onConnection = (socket: Socket, req: IncomingMessage): void => {
    try {
      if (socket === null || typeof socket !== 'object' || socket[STATE] !== undefined) return;
      // A 'connection' emitted without ws's handshake (no 'headers' event): the request is read now.
      const id =
        (req === undefined ? undefined : this.#ids.get(req)) ??
        acceptIncoming(req ?? NO_REQUEST, this.#handle.options.correlation, this.#handle);
      const state: SocketState = { id, path: pathOf(req?.url), adapter: this };
      this.#instrument(socket, state);
      this.#counter.opened();
      socket.on('close', this.#counter.closed);
    } catch (error) {
      this.#handle.reportError('instrumenting a WebSocket failed', warning('LOOPSIGHT_REQUEST_FAILED', error, { site: 'ws:connection' }));
    }
  };

  /** This adapter as the monitor's component (set by loopsight()): let go of when its server closes. */
  component: Exporter | undefined;

  readonly #onClose = (): void => {
    this.release();
    // Nobody else stops a monitor this adapter made: it goes with its server. A shared one goes
    // on, without this adapter: servers opened and closed one after another leave nothing on it.
    if (this.#owned) void this.monitor.stop();
    else if (this.component) this.#handle.detach(this.component);
    this.#wss = undefined;
  };

  #instrument(socket: Socket, state: SocketState): void {
    const emit = socket.emit as Listener;
    const on = socket.on as Listener;
    const prepend = socket.prependListener as Listener;
    const remove = socket.removeListener as Listener;
    const adapter = this;
    socket[STATE] = state;
    socket.emit = function loopsightEmit(this: Socket, event: string | symbol, ...args: unknown[]): boolean {
      if (event !== 'message' || !adapter.#active) return Reflect.apply(emit, this, [event, ...args]) as boolean;
      return adapter.#message(this, state, emit, args) as boolean;
    };
    const register = (method: Listener) =>
      function loopsightRegister(this: Socket, event: unknown, listener: unknown): unknown {
        const fn = event === 'message' && typeof listener === 'function' ? capture(listener as Listener) : listener;
        return Reflect.apply(method, this, [event, fn]);
      };
    socket.on = register(on);
    socket.addListener = socket.on;
    socket.prependListener = register(prepend);
    socket.removeListener = function loopsightRemove(this: Socket, event: unknown, listener: unknown): unknown {
      return Reflect.apply(remove, this, [event, event === 'message' ? registeredFor(this, listener) : listener]);
    };
    socket.off = socket.removeListener;
    const send = socket.send as Listener | undefined;
    const watch = this.#watch;
    if (watch === undefined || typeof send !== 'function') return;
    // Reads one flag of the net socket after each send: only a frame told to wait goes to the watch.
    socket.send = function loopsightSend(this: Socket, ...args: unknown[]): unknown {
      const result = Reflect.apply(send, this, args);
      if (adapter.#active && rawOf(this)?.writableNeedDrain === true) watch.pressed(this, currentScope(), wsPort, loopsightSend);
      return result;
    };
  }

  /** One message: its listeners run in the connection's scope, timed until their promises settle. */
  #message(socket: Socket, state: SocketState, emit: Listener, args: unknown[]): unknown {
    const handle = this.#handle;
    const scope: RequestScope = {
      correlationId: state.id,
      method: 'WS',
      route: this.#name(socket, state, args),
      startedAt: Date.now(),
    };
    const t0 = performance.now();
    const slot = handle.begin(scope);
    const outer = pending;
    const promises: PromiseLike<unknown>[] = [];
    pending = promises;
    let result: unknown;
    try {
      result = runInScope(scope, () => Reflect.apply(emit, socket, ['message', ...args]));
    } catch (error) {
      handle.end(scope, slot, t0, undefined, true);
      throw error;
    } finally {
      pending = outer;
    }
    if (promises.length === 0) {
      handle.end(scope, slot, t0, undefined, false);
      return result;
    }
    let left = promises.length;
    let failed = false;
    const done = () => {
      if (--left === 0) handle.end(scope, slot, t0, undefined, failed);
    };
    for (const promise of promises) {
      // A rejection is passed on: the application's unhandled-rejection behaviour stays its own.
      void promise.then(done, (error: unknown) => {
        failed = true;
        done();
        throw error;
      });
    }
    return result;
  }

  /** The message's kind, or the upgrade path; bounded like route labels. */
  #name(socket: Socket, state: SocketState, args: unknown[]): string {
    let name = state.path;
    const messageName = this.#messageName;
    if (messageName !== undefined) {
      // A throw, or a name that is not one: the path names the message, and the callback is warned of once.
      let problem: unknown;
      try {
        const named: unknown = messageName(args[0] as WsData, args[1] === true, socket);
        if (typeof named === 'string' && named !== '') name = named;
        else if (named !== undefined) problem = `messageName returned ${named === '' ? 'an empty string' : typeof named}, not a string`;
      } catch (error) {
        problem = error;
      }
      if (problem !== undefined) {
        this.#handle.reportError(
          'options.messageName failed; the upgrade path names the message',
          warning('LOOPSIGHT_CALLBACK_THREW', problem, { site: 'ws:messageName' }),
        );
      }
    }
    const names = this.#names;
    if (names.has(name)) return name;
    if (names.size >= this.#maxNames) return ROUTE_OTHER;
    names.add(name);
    return name;
  }
}

/** A 'connection' emitted with no request at all: it gets a fresh id. */
const NO_REQUEST = { headers: {}, rawHeaders: [] } as unknown as IncomingMessage;

/** What @loopsight/ws adds to an adapter's options; the rest go to the monitor, which checks them. */
const WS_SHAPE = {
  messageName: func<NonNullable<LoopsightWsOptions['messageName']>>(),
  maxMessageNames: positive({ integer: true, max: 100_000, default: DEFAULT_MAX_MESSAGE_NAMES }),
} satisfies Shape;

function checkOptions(options: unknown): { ws: Resolved<typeof WS_SHAPE>; adapter: LoopsightWsOptions } {
  if (options === undefined || options === null) return { ws: resolveShape(WS_SHAPE, {}), adapter: {} };
  if (!isPlainObject(options)) return invalidOption('', 'an object', options);
  const { messageName, maxMessageNames, ...adapter } = options as LoopsightWsOptions;
  return { ws: resolveShape(WS_SHAPE, { messageName, maxMessageNames }), adapter };
}

/**
 * Instruments a ws 8 `WebSocketServer`: every connection gets a correlation id (the upgrade
 * request's valid `x-request-id`, else a fresh one, echoed in the handshake response), and every
 * message's listeners run in a scope `{ correlationId, method: 'WS', route }`, where `route` is the
 * message's kind (`messageName`) or the upgrade path. Stalls, promise reports, `getCorrelationId()`,
 * outbound propagation and the exporters then work per message. Works with `{ server }`, `{ port }`
 * and `{ noServer: true }` + `handleUpgrade`. Returns the Monitor.
 *
 * @example
 * const wss = new WebSocketServer({ server });
 * const monitor = loopsight(wss, { messageName: (data) => JSON.parse(String(data)).type });
 * wss.on('connection', (ws) => ws.on('message', (data) => handle(data)));
 */
export function loopsight(wss: WebSocketServerLike, options?: LoopsightWsOptions): Monitor {
  if (wss === null || typeof wss !== 'object' || typeof wss.on !== 'function' || typeof wss.removeListener !== 'function')
    invalidOption('wss', 'a ws WebSocketServer', wss);
  const { ws, adapter: adapterOptions } = checkOptions(options);
  const { monitor, owned } = monitorFor(adapterOptions);
  const adapter = new WsAdapter(wss, monitor, owned, ws);
  const config = internals(monitor).options.correlation;
  if (config.propagate) monitor.attach(propagation(enablePropagation, config.header));
  const component: Exporter = {
    name: `@loopsight/ws#${adapters++}`,
    start: () => adapter.install(),
    stop: () => adapter.release(),
  };
  adapter.component = component;
  monitor.attach(component);
  monitor.start();
  return monitor;
}
