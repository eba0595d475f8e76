import type { RequestScope } from './types.js';

/** Label value when nothing was in flight: a timer, startup, a background job outside any scope. */
export const ROUTE_NONE = '__none__';
/**
 * Label value for a stall while requests were in flight but none could be named: the pause landed
 * late, or stack captures were rate-limited. Loopsight leaves these unattributed rather than guess.
 */
export const ROUTE_UNKNOWN = '__unknown__';
/** Label value for a request the router did not match (a 404), or a `monitor.run()` job without a route. */
export const ROUTE_UNROUTED = '__unrouted__';
/** Label value for a stall that began before the process served (`phase: 'startup'`). */
export const ROUTE_STARTUP = '__startup__';
/** Label value once `maxRoutes` distinct templates were seen: the cap that keeps series bounded. */
export const ROUTE_OTHER = '__other__';

/**
 * Maps a report's scope to a bounded route label. Routes are templates already (`/users/:id`), but
 * an app can have thousands, and a buggy router can hand out raw paths: past `maxRoutes` distinct
 * values every new one is counted under `__other__`.
 */
export function routeLabeler(maxRoutes: number): (scope: Pick<RequestScope, 'route'> | undefined, inflight?: number) => string {
  const seen = new Set<string>();
  return (scope, inflight = 0) => {
    if (scope === undefined) return inflight > 0 ? ROUTE_UNKNOWN : ROUTE_NONE;
    const route = scope.route;
    if (typeof route !== 'string' || route === '') return ROUTE_UNROUTED;
    if (seen.has(route)) return route;
    if (seen.size >= maxRoutes) return ROUTE_OTHER;
    seen.add(route);
    return route;
  };
}
