// node servers/koa.mjs <variant>: a Koa 3 app with @koa/router serving GET /hello and GET /awaits
// (lib/routes.mjs). A variant is what is mounted before the router; add one here and list it in configs.mjs.
import http from 'node:http';
import Router from '@koa/router';
import { createDashboard } from '@loopsight/dashboard';
import { loopsight as adapter } from '@loopsight/koa';
import { prometheusExporter } from '@loopsight/prometheus';
import rTracer from 'cls-rtracer';
import Koa from 'koa';
import { Registry } from 'prom-client';
import { alsFloorKoa } from './lib/als-floor.mjs';
import { HOST, pickVariant, serve } from './lib/harness.mjs';
import { tenAwaits } from './lib/routes.mjs';
import { benchOptions, PROMISES_SAMPLED_SCALED, promClientMetrics, standaloneLoopSampler } from './lib/variants.mjs';

const loopsight = (options) => adapter(benchOptions(options));

const variants = {
  bare: () => {},
  'als-floor': (app) => app.use(alsFloorKoa),
  // "loopsight defaults" of issue 8: context + loop stats + stall watchdog, promise tracking off.
  loopsight: (app) => app.use(loopsight({ promises: false })),
  'loopsight-prometheus': (app) => app.use(loopsight({ promises: false, exporters: [prometheusExporter({ registry: new Registry() })] })),
  'loopsight-dashboard': (app) => {
    const ls = loopsight({ promises: false });
    app.use(ls);
    app.use(createDashboard(ls.monitor).koa);
  },
  // loopsight() as shipped: the promise tracker is on, sampled (1 s windows every 30 s).
  'loopsight-promises-sampled': (app) => app.use(loopsight()),
  'loopsight-promises-sampled-scaled': (app) => app.use(loopsight({ promises: PROMISES_SAMPLED_SCALED })),
  'loopsight-promises-full': (app) => app.use(loopsight({ promises: { mode: 'full' } })),
  // Issue 27: loopsight() as shipped (above: loopsight-promises-sampled) with one part off at a time.
  'defaults-no-looplag': (app) => app.use(loopsight({ loopLag: false })),
  'defaults-no-stacks': (app) => app.use(loopsight({ loopLag: { captureStacks: false } })),
  'defaults-no-watchdog': (app) => {
    app.use(loopsight({ loopLag: false }));
    standaloneLoopSampler();
  },
  // Peers.
  'cls-rtracer': (app) => app.use(rTracer.koaMiddleware({ useHeader: true, echoHeader: true })),
  'prom-client': (app) => {
    const duration = promClientMetrics();
    app.use(async (ctx, next) => {
      const end = duration.startTimer();
      try {
        await next();
      } finally {
        end({ method: ctx.method, route: ctx._matchedRoute ?? '', status_code: ctx.status });
      }
    });
  },
};

const { name, setup } = pickVariant(variants);
const app = new Koa();
await setup(app);
const router = new Router();
router.get('/hello', (ctx) => {
  ctx.body = { hello: 'world' };
});
router.get('/awaits', async (ctx) => {
  ctx.body = await tenAwaits();
});
app.use(router.routes());
app.use(router.allowedMethods());

const server = http.createServer(app.callback());
await new Promise((resolve) => server.listen(0, HOST, resolve));
serve(server, name);
