import type { RequestScope } from '@loopsight/core';

/** Label value when nothing was in flight: a timer, startup, a background job outside any scope. */
export const ROUTE_NONE = '__none__';
/** Label value for a request the router did not match (a 404), or a `monitor.run()` job without a route. */
export const ROUTE_UNROUTED = '__unrouted__';
/** Label value once `maxRoutes` distinct templates were seen: the cap that keeps series bounded. */
export const ROUTE_OTHER = '__other__';

/**
 * Maps a report's scope to a bounded route label. Routes are templates already (`/users/:id`), but
 * an app can have thousands, and a buggy router can hand out raw paths: past `maxRoutes` distinct
 * values every new one is counted under `__other__`.
 */
export function routeLabeler(maxRoutes: number): (scope: Pick<RequestScope, 'route'> | undefined) => string {
  const seen = new Set<string>();
  return (scope) => {
    if (scope === undefined) return ROUTE_NONE;
    const route = scope.route;
    if (typeof route !== 'string' || route === '') return ROUTE_UNROUTED;
    if (seen.has(route)) return route;
    if (seen.size >= maxRoutes) return ROUTE_OTHER;
    seen.add(route);
    return route;
  };
}
