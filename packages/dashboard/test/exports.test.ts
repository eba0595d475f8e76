import * as dashboard from '@loopsight/dashboard';
import { expect, it } from 'vitest';

// The public surface: a change here is a change users see.
it('pins the runtime exports', () => {
  expect(Object.keys(dashboard).sort()).toEqual(['createDashboard']);
});
