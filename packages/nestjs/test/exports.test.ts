import * as nestjs from '@loopsight/nestjs';
import { expect, it } from 'vitest';

// The public surface: a change here is a change users see.
it('pins the runtime exports', () => {
  expect(Object.keys(nestjs).sort()).toEqual(['LoopsightModule', 'Monitor']);
});
