/** A route Hono matched: `path` is the template as registered, prefixes of `app.route()` and `basePath()` included. */
interface MatchedRoute {
  path: string;
  method: string;
}

/** The parts of Hono's request the route template is read from (Hono 4). */
export interface HonoRequestLike {
  matchedRoutes?: readonly MatchedRoute[];
  routeIndex?: number;
}

/**
 * The route template of the handler Hono dispatched last ('/users/:id'), or undefined while only
 * middleware has run. Middleware mounted with `app.use()` (method ALL, a path ending in `*`: this
 * one, a logger, a mounted sub-app) is no route: a request it answers, or that falls through to
 * `notFound`, has no template rather than a wildcard shared by every path.
 */
export function honoRoute(req: HonoRequestLike): string | undefined {
  const index = req.routeIndex;
  if (index === undefined) return undefined;
  const route = req.matchedRoutes?.[index];
  if (route === undefined || typeof route.path !== 'string') return undefined;
  if (route.method === 'ALL' && route.path.endsWith('*')) return undefined;
  return route.path;
}
