// node servers/fastify.mjs <variant>: a Fastify 5 app serving GET /hello → { hello: 'world' }.
// A variant is what is registered before the route; add one here and list it in configs.mjs.
import { loopsight } from '@loopsight/fastify';
import Fastify from 'fastify';
import { alsFloorFastify } from './lib/als-floor.mjs';
import { HOST, pickVariant, serve } from './lib/harness.mjs';

const variants = {
  bare: () => {},
  'als-floor': (app) => alsFloorFastify(app),
  loopsight: async (app) => {
    await app.register(loopsight);
  },
  // Ablations (configs.mjs: optional, run with --only): where loopsight's cost above the floor goes.
  'als-floor-raw-header': (app) => alsFloorFastify(app, { rawHeader: true }),
  'loopsight-no-echo': async (app) => {
    await app.register(loopsight, { correlation: { echo: false } });
  },
  'loopsight-no-looplag': async (app) => {
    await app.register(loopsight, { loopLag: false });
  },
};

const { name, setup } = pickVariant(variants);
const app = Fastify({ logger: false });
await setup(app);
app.get('/hello', async () => ({ hello: 'world' }));

await app.listen({ host: HOST, port: 0 });
serve(app.server, name, () => app.close());
