import diagnosticsChannel from 'node:diagnostics_channel';
import http, { type ClientRequest, type RequestOptions } from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';
import { currentScope, type RequestScope } from '@loopsight/core';
import { idRefusal } from '@loopsight/core/adapter';
import { warning } from '@loopsight/options';

type OnError = (what: string, error: unknown) => void;

interface Shared {
  /** Header names to set, with how many enablers asked for each. */
  readonly wanted: Map<string, number>;
  readonly errorSinks: Set<OnError>;
  /** Undoes what the build that installed the hooks did; set while installed. */
  uninstall: (() => void) | undefined;
}

// One set of hooks per process: the ESM and CJS builds (or two copies) would otherwise each wrap
// http.request and subscribe to the client channels.
const KEY = Symbol.for('loopsight.context.propagation.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: Shared };
holder[KEY] ??= { wanted: new Map(), errorSinks: new Set(), uninstall: undefined };
const shared: Shared = holder[KEY];
const { wanted, errorSinks } = shared;

function contain(what: string, error: unknown): void {
  // Told once, not once per enabler: each sink is a monitor that would warn on its own.
  for (const sink of errorSinks) {
    sink(what, error);
    return;
  }
}

/**
 * The id to put on an outbound request, or undefined. Every way of opening a scope validates its
 * id, but runInScope() and hand-made scopes do not: an id with a control character would make
 * http.request throw into the caller (ERR_INVALID_CHAR), so it goes out untagged instead.
 */
function outboundId(scope: RequestScope | undefined): string | undefined {
  if (scope === undefined) return undefined;
  const id = scope.correlationId;
  return idRefusal(id) === undefined ? id : undefined;
}

/** The header names outbound requests carry the id in. */
export function propagatedHeaders(): IterableIterator<string> {
  return wanted.keys();
}

interface UndiciRequest {
  headers: string | (string | Buffer)[];
  addHeader(name: string, value: string): unknown;
}

function undiciHas(headers: UndiciRequest['headers'], name: string): boolean {
  // undici 5 keeps a request's headers as one 'name: value\r\n…' string.
  if (typeof headers === 'string') return `\r\n${headers.toLowerCase()}`.includes(`\r\n${name}:`);
  for (let i = 0; i < headers.length; i += 2) if (String(headers[i]).toLowerCase() === name) return true;
  return false;
}

function onUndiciRequest(message: unknown): void {
  const id = outboundId(currentScope());
  if (id === undefined) return;
  try {
    const { request } = message as { request: UndiciRequest };
    for (const name of wanted.keys()) if (!undiciHas(request.headers, name)) request.addHeader(name, id);
  } catch (error) {
    contain('setting the correlation header on a fetch/undici request failed', warning('LOOPSIGHT_PROPAGATION', error, { site: 'undici' }));
  }
}

function onHttpRequestCreated(message: unknown): void {
  const id = outboundId(currentScope());
  if (id === undefined) return;
  try {
    const { request } = message as { request: ClientRequest };
    if (request.headersSent) return;
    for (const name of wanted.keys()) if (request.getHeader(name) === undefined) request.setHeader(name, id);
  } catch (error) {
    contain('setting the correlation header on an http request failed', warning('LOOPSIGHT_PROPAGATION', error, { site: 'http' }));
  }
}

// Node before 23 publishes http.client.request.start only after the headers were written, and has
// no http.client.request.created: there the header has to go into the options before the request
// is built. The channel is still subscribed: on versions that have it, whichever runs first wins.
const NEEDS_WRAP = Number(process.versions.node.split('.')[0]) < 23;

type RequestFn = typeof http.request;
interface ClientModule {
  request: RequestFn;
  get: RequestFn;
}
// Per wrapped module: its own functions and the wrappers we put in their place.
const wrapped = new Map<ClientModule, { original: ClientModule; wrapper: ClientModule }>();

function hasHeader(headers: RequestOptions['headers'], name: string): boolean {
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) if (String(headers[i]).toLowerCase() === name) return true;
    return false;
  }
  if (headers === undefined || headers === null) return false;
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return true;
  return false;
}

function withHeaders(options: RequestOptions, id: string): RequestOptions {
  let headers = options.headers;
  let copied = false;
  for (const name of wanted.keys()) {
    if (hasHeader(headers, name)) continue;
    if (!copied) {
      headers = Array.isArray(headers) ? [...headers] : { ...headers };
      copied = true;
    }
    if (Array.isArray(headers)) headers.push(name, id);
    else (headers as Record<string, string>)[name] = id;
  }
  return copied ? { ...options, headers } : options;
}

function injectArgs(args: unknown[]): unknown[] {
  const id = outboundId(currentScope());
  if (id === undefined) return args;
  try {
    const [first, second] = args;
    if (typeof first === 'string' || first instanceof URL) {
      if (typeof second === 'object' && second !== null) return [first, withHeaders(second as RequestOptions, id), ...args.slice(2)];
      return [first, withHeaders({}, id), ...args.slice(1)];
    }
    if (typeof first === 'object' && first !== null) return [withHeaders(first as RequestOptions, id), ...args.slice(1)];
  } catch (error) {
    contain('setting the correlation header on an http request failed', warning('LOOPSIGHT_PROPAGATION', error, { site: 'http' }));
  }
  return args;
}

function wrapOne(fn: RequestFn): RequestFn {
  return function (this: unknown, ...args: unknown[]) {
    return (fn as (...a: unknown[]) => ClientRequest).apply(this, injectArgs(args));
  } as RequestFn;
}

function wrap(mod: ClientModule): void {
  const original = { request: mod.request, get: mod.get };
  const wrapper = { request: wrapOne(original.request), get: wrapOne(original.get) };
  wrapped.set(mod, { original, wrapper });
  mod.request = wrapper.request;
  mod.get = wrapper.get;
}

function unwrap(mod: ClientModule, { original, wrapper }: { original: ClientModule; wrapper: ClientModule }): void {
  // If someone wrapped on top of ours since, leave theirs in place: ours still forwards.
  if (mod.request === wrapper.request) mod.request = original.request;
  if (mod.get === wrapper.get) mod.get = original.get;
}

function install(): () => void {
  diagnosticsChannel.subscribe('undici:request:create', onUndiciRequest);
  diagnosticsChannel.subscribe('http.client.request.created', onHttpRequestCreated);
  if (NEEDS_WRAP) {
    wrap(http);
    wrap(https);
    syncBuiltinESMExports();
  }
  return uninstall;
}

function uninstall(): void {
  diagnosticsChannel.unsubscribe('undici:request:create', onUndiciRequest);
  diagnosticsChannel.unsubscribe('http.client.request.created', onHttpRequestCreated);
  for (const [mod, entry] of wrapped) unwrap(mod, entry);
  if (wrapped.size > 0) syncBuiltinESMExports();
  wrapped.clear();
}

/**
 * Sets `header` to the current correlation id on every outbound fetch/undici and http(s) request
 * made inside a scope, unless the caller set it. Returns the function that undoes it. Adapters do
 * this for you (correlation.propagate); call it yourself when you use only @loopsight/context.
 */
export function enablePropagation(header = 'x-request-id', onError?: (what: string, error: unknown) => void): () => void {
  const name = header.toLowerCase();
  if (wanted.size === 0) shared.uninstall ??= install();
  wanted.set(name, (wanted.get(name) ?? 0) + 1);
  if (onError) errorSinks.add(onError);
  let enabled = true;
  return () => {
    if (!enabled) return;
    enabled = false;
    if (onError) errorSinks.delete(onError);
    const count = (wanted.get(name) ?? 1) - 1;
    if (count > 0) wanted.set(name, count);
    else wanted.delete(name);
    if (wanted.size === 0) {
      shared.uninstall?.();
      shared.uninstall = undefined;
    }
  };
}
