// The variants of both Nest servers (nestjs.mjs on Express, nestjs-fastify.mjs on Fastify).

import { createRequire } from 'node:module';
import { LoopsightModule } from '@loopsight/nestjs';
import { alsFloorExpress, alsFloorFastify } from './als-floor.mjs';
import { incomingOrNew } from './routes.mjs';

// nestjs-cls 7's ESM build imports @nestjs/core paths without extensions, which Node's ESM loader refuses.
const require = createRequire(import.meta.url);

export const nestVariants = {
  bare: () => [],
  // Mounted on the platform before Nest mounts anything, where the module mounts loopsight.
  'als-floor': (adapter) => {
    if (adapter.getType() === 'express') adapter.getInstance().use(alsFloorExpress);
    else alsFloorFastify(adapter.getInstance());
    return [];
  },
  loopsight: () => [LoopsightModule.forRoot({ promises: false })],
  'loopsight-promises-sampled': () => [LoopsightModule.forRoot()],
  // Peer: nestjs-cls as its docs set it up, with the incoming x-request-id as the CLS id (it does not echo it).
  'nestjs-cls': () => [
    require('nestjs-cls').ClsModule.forRoot({
      global: true,
      middleware: { mount: true, generateId: true, idGenerator: (req) => incomingOrNew(req.headers) },
    }),
  ],
};
