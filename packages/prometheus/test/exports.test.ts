import * as prometheus from '@loopsight/prometheus';
import { expect, it } from 'vitest';

// The public surface: a change here is a change users see.
it('pins the runtime exports', () => {
  expect(Object.keys(prometheus).sort()).toEqual([
    'ROUTE_NONE',
    'ROUTE_OTHER',
    'ROUTE_UNKNOWN',
    'ROUTE_UNROUTED',
    'metricsHandler',
    'prometheusExporter',
    'scrape',
  ]);
});
