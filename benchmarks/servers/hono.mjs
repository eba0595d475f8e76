// node servers/hono.mjs <variant>: a Hono 4 app on @hono/node-server 2 serving GET /hello and
// GET /awaits (lib/routes.mjs). A variant is what is mounted before the routes; add one here and
// list it in configs.mjs.
import { createAdaptorServer } from '@hono/node-server';
import { loopsight as adapter } from '@loopsight/hono';
import { prometheusExporter } from '@loopsight/prometheus';
import { Hono } from 'hono';
import { contextStorage } from 'hono/context-storage';
import { requestId } from 'hono/request-id';
import { routePath } from 'hono/route';
import { Registry } from 'prom-client';
import { alsFloorHono } from './lib/als-floor.mjs';
import { HOST, pickVariant, serve } from './lib/harness.mjs';
import { tenAwaits } from './lib/routes.mjs';
import { benchOptions, PROMISES_SAMPLED_SCALED, promClientMetrics } from './lib/variants.mjs';

const loopsight = (options) => adapter(benchOptions(options));

const variants = {
  bare: () => {},
  'als-floor': (app) => app.use(alsFloorHono),
  // "loopsight defaults" of issue 8: context + loop stats + stall watchdog, promise tracking off.
  loopsight: (app) => app.use(loopsight({ promises: false })),
  'loopsight-prometheus': (app) => app.use(loopsight({ promises: false, exporters: [prometheusExporter({ registry: new Registry() })] })),
  // loopsight() as shipped: the promise tracker is on, sampled (1 s windows every 30 s).
  'loopsight-promises-sampled': (app) => app.use(loopsight()),
  'loopsight-promises-sampled-scaled': (app) => app.use(loopsight({ promises: PROMISES_SAMPLED_SCALED })),
  'loopsight-promises-full': (app) => app.use(loopsight({ promises: { mode: 'full' } })),
  // Peers: Hono's own id middleware alone (c.get('requestId') in handlers only), and with Hono's
  // AsyncLocalStorage middleware, which makes the context (so the id) readable anywhere, as loopsight does.
  'request-id': (app) => app.use(requestId()),
  'request-id-context-storage': (app) => {
    app.use(contextStorage());
    app.use(requestId());
  },
  'prom-client': (app) => {
    const duration = promClientMetrics();
    app.use(async (c, next) => {
      const end = duration.startTimer();
      try {
        await next();
      } finally {
        end({ method: c.req.method, route: routePath(c, -1), status_code: c.res.status });
      }
    });
  },
};

const { name, setup } = pickVariant(variants);
const app = new Hono();
await setup(app);
app.get('/hello', (c) => c.json({ hello: 'world' }));
app.get('/awaits', async (c) => c.json(await tenAwaits()));

const server = createAdaptorServer({ fetch: app.fetch });
await new Promise((resolve) => server.listen(0, HOST, resolve));
serve(server, name);
