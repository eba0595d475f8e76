import type { IncomingMessage } from 'node:http';
import { pathOf } from '@loopsight/core/adapter';

/** The parts of Express's request the route template is read from. */
export interface ExpressRequest extends IncomingMessage {
  baseUrl?: string;
  originalUrl?: string;
  route?: { path: unknown };
  app?: { _router?: Router; router?: Router };
}

/** A layer of an Express 4 router, or of the `router` package behind Express 5. */
interface Layer {
  route?: unknown;
  handle?: unknown;
  // Express 4: the mount pattern survives only as a regexp and the names of its groups.
  regexp?: RegExp & { fast_slash?: boolean; fast_star?: boolean };
  keys?: { name: string | number }[];
  // router 2: `slash` for a mount at '/'; `match()` returns the match (2.3: with the pattern as
  // written, `rawPath`) or, before 2.3, true and leaves `path` and `params` on the layer.
  slash?: boolean;
  match?: (path: string) => unknown;
  path?: unknown;
  params?: unknown;
}

interface Router {
  stack?: unknown;
}

interface Mount {
  /** The URL text the layer consumed. */
  matched: string;
  /** The same, as a template: '/orgs/:org'. */
  template: string;
}

const withIndices = new WeakMap<RegExp, RegExp>();

function trimSlash(path: string): string {
  return path.endsWith('/') ? path.slice(0, -1) : path;
}

/** Express 4: the matched text with each captured parameter replaced by `:name`, from the groups' indices. */
function express4Mount(layer: Layer, regexp: NonNullable<Layer['regexp']>, path: string): Mount | undefined {
  if (regexp.fast_slash) return { matched: '', template: '' };
  let re = withIndices.get(regexp);
  if (re === undefined) {
    re = new RegExp(regexp.source, `${regexp.flags.replace(/[gy]/g, '')}d`);
    withIndices.set(regexp, re);
  }
  const m = re.exec(path);
  if (m === null || m.indices === undefined) return undefined;
  let template = m[0];
  // Right to left, so that earlier indices stay valid.
  for (let i = m.length - 1; i >= 1; i--) {
    const span = m.indices[i];
    if (span === undefined) continue;
    const name = layer.keys?.[i - 1]?.name ?? i - 1;
    template = `${template.slice(0, span[0])}:${name}${template.slice(span[1])}`;
  }
  return { matched: m[0], template: trimSlash(template) };
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * router before 2.3 keeps no pattern: each parameter's value is put back as `:name` on the
 * segment it came from. Right to left, each on the rightmost segment that fits: in REST paths a
 * literal comes before its parameter (`/orgs/:org` with the id `orgs`). A parameter that is not a
 * whole segment ('/f-:name.:ext') gives no template rather than a guess that could carry the value.
 */
function substitute(matched: string, params: unknown): string | undefined {
  if (typeof params !== 'object' || params === null) return undefined;
  const segments = matched.split('/');
  let before = segments.length;
  for (const [name, value] of Object.entries(params).reverse()) {
    const parts = Array.isArray(value) ? value.map(String) : [String(value)];
    let at = -1;
    for (let i = before - parts.length; i >= 1 && at === -1; i--) {
      if (parts.every((p, j) => decode(segments[i + j] ?? '') === p)) at = i;
    }
    if (at === -1) return undefined;
    segments.splice(at, parts.length, Array.isArray(value) ? `*${name}` : `:${name}`);
    before = at;
  }
  return segments.join('/');
}

function router2Mount(layer: Layer, path: string): Mount | undefined {
  if (layer.slash) return { matched: '', template: '' };
  const match = layer.match?.(path);
  if (!match) return undefined;
  const result = typeof match === 'object' ? (match as { path?: unknown; params?: unknown; pattern?: unknown }) : layer;
  if (typeof result.path !== 'string') return undefined;
  const pattern = (result as { pattern?: unknown }).pattern;
  const template = typeof pattern === 'string' ? pattern : substitute(result.path, result.params);
  return template === undefined ? undefined : { matched: result.path, template: trimSlash(template) };
}

function mountOf(layer: Layer, path: string): Mount | undefined {
  if (layer.regexp instanceof RegExp) return express4Mount(layer, layer.regexp, path);
  if (typeof layer.match === 'function') return router2Mount(layer, path);
  return undefined;
}

function stackOf(handle: unknown): Layer[] | undefined {
  const stack = (handle as Router | null | undefined)?.stack;
  return Array.isArray(stack) ? (stack as Layer[]) : undefined;
}

/**
 * Walks the routers again, as Express did, to the layer of the route that answered, collecting
 * the mount patterns on the way. Only routers are matched (a route layer is recognised by
 * identity), so the cost is one regexp per router mount on the way, once per request.
 */
function find(stack: Layer[], path: string, route: unknown, depth: number): string | undefined {
  for (const layer of stack) {
    if (layer.route !== undefined) {
      if (layer.route === route) return '';
      continue;
    }
    const inner = stackOf(layer.handle);
    if (inner === undefined || depth > 16) continue;
    const mount = mountOf(layer, path);
    if (mount === undefined) continue;
    let rest = path.slice(mount.matched.length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
    const below = find(inner, rest, route, depth + 1);
    if (below !== undefined) return mount.template + below;
  }
  return undefined;
}

/**
 * The route template of an Express 4 or 5 request, nested routers included ('/orgs/:org/members'),
 * or undefined when no route answered or its mount patterns cannot be learned (a mounted
 * sub-application): the path itself is never used, since `req.baseUrl` holds the matched URL,
 * ids and all.
 */
export function expressRoute(req: ExpressRequest): string | undefined {
  const route = req.route;
  if (route === undefined) return undefined;
  const path = typeof route.path === 'string' ? route.path : String(route.path);
  if (!req.baseUrl) return path;
  const app = req.app;
  // Express 4's app.router is a getter that throws: read _router first.
  const stack = stackOf(app?._router ?? app?.router);
  if (stack === undefined) return undefined;
  const prefix = find(stack, pathOf(req.originalUrl ?? req.url), route, 0);
  if (prefix === undefined) return undefined;
  return prefix !== '' && path === '/' ? prefix : prefix + path;
}
