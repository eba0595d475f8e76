import * as otel from '@loopsight/otel';
import { expect, it } from 'vitest';

// The public surface: a change here is a change users see.
it('pins the runtime exports', () => {
  expect(Object.keys(otel).sort()).toEqual(['otelExporter']);
});
