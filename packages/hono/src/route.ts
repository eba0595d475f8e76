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
 * Middleware mounted with `app.use()` (method ALL, a path ending in `*`: this one, a logger, auth,
 * a mounted sub-app) is no route: labelling by it would put every path under '/*'.
 */
function isMiddleware(route: MatchedRoute): boolean {
  return route.method === 'ALL' && route.path.endsWith('*');
}

/**
 * The route template of a Hono request ('/users/:id'): the first route, from the handler running
 * now on, among those Hono matched before dispatching any handler. So it is known inside the
 * middleware that runs before the route (a stall there is reported with it), and a request no
 * route matched (notFound) has none rather than a wildcard.
 */
export function honoRoute(req: HonoRequestLike): string | undefined {
  const routes = req.matchedRoutes;
  if (routes === undefined) return undefined;
  for (let i = req.routeIndex ?? 0; i < routes.length; i++) {
    const route = routes[i];
    if (route !== undefined && typeof route.path === 'string' && !isMiddleware(route)) return route.path;
  }
  return undefined;
}
