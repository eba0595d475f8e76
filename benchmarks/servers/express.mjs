// node servers/express.mjs <variant>: an Express 5 app serving GET /hello and GET /awaits (lib/routes.mjs).
// A variant is what is mounted before the routes; add one here and list it in configs.mjs.
import http from 'node:http';
import { createDashboard } from '@loopsight/dashboard';
import { loopsight as adapter } from '@loopsight/express';
import { createStallWatchdog } from '@loopsight/loop-lag';
import { prometheusExporter } from '@loopsight/prometheus';
import rTracer from 'cls-rtracer';
import express from 'express';
import httpContext from 'express-http-context';
import { Registry } from 'prom-client';
import { alsFloorExpress } from './lib/als-floor.mjs';
import { HOST, pickVariant, serve } from './lib/harness.mjs';
import { incomingOrNew, streamTo, tenAwaits } from './lib/routes.mjs';
import { benchOptions, PROMISES_SAMPLED_SCALED, promClientMetrics, standaloneLoopSampler } from './lib/variants.mjs';

const loopsight = (options) => adapter(benchOptions(options));

const variants = {
  bare: () => {},
  'als-floor': (app) => app.use(alsFloorExpress),
  // "loopsight defaults" of issue 8: context + loop stats + stall watchdog, promise tracking off.
  loopsight: (app) => app.use(loopsight({ promises: false })),
  // The backpressure watch off (its only per-request part is tagging the response; per write, the patch).
  'loopsight-no-backpressure': (app) => app.use(loopsight({ promises: false, backpressure: false })),
  'loopsight-prometheus': (app) => app.use(loopsight({ promises: false, exporters: [prometheusExporter({ registry: new Registry() })] })),
  'loopsight-dashboard': (app) => {
    const ls = loopsight({ promises: false });
    app.use(ls);
    app.use(createDashboard(ls.monitor).express);
  },
  // loopsight() as shipped: the promise tracker is on, sampled (1 s windows every 30 s).
  'loopsight-promises-sampled': (app) => app.use(loopsight()),
  'loopsight-promises-sampled-scaled': (app) => app.use(loopsight({ promises: PROMISES_SAMPLED_SCALED })),
  'loopsight-promises-full': (app) => app.use(loopsight({ promises: { mode: 'full' } })),
  // Issue 27: loopsight() as shipped (above: loopsight-promises-sampled) with one part off at a time.
  'defaults-no-looplag': (app) => app.use(loopsight({ loopLag: false })),
  'defaults-no-stacks': (app) => app.use(loopsight({ loopLag: { captureStacks: false } })),
  // The delay sampler's timer at 50 ms instead of 10 ms: what its wake-ups cost an idle process (micro/idle.mjs).
  'defaults-resolution-50': (app) => app.use(loopsight({ loopLag: { resolutionMs: 50 } })),
  'defaults-no-watchdog': (app) => {
    app.use(loopsight({ loopLag: false }));
    standaloneLoopSampler();
  },
  // Peers.
  'cls-rtracer': (app) => app.use(rTracer.expressMiddleware({ useHeader: true, echoHeader: true })),
  'express-http-context': (app) => {
    app.use(httpContext.middleware);
    app.use((req, res, next) => {
      const id = incomingOrNew(req.headers);
      httpContext.set('requestId', id);
      res.setHeader('x-request-id', id);
      next();
    });
  },
  'prom-client': (app) => {
    const duration = promClientMetrics();
    app.use((req, res, next) => {
      const end = duration.startTimer();
      res.on('finish', () => end({ method: req.method, route: req.route?.path ?? '', status_code: res.statusCode }));
      next();
    });
  },
  // Needs `--import ./servers/lib/otel-setup.mjs` (configs.mjs passes it): the app itself is bare.
  otel: () => {
    if (!globalThis.__benchOtel) throw new Error('the otel variant runs with --import ./servers/lib/otel-setup.mjs');
  },
  // Ablations (configs.mjs: optional, run with --only). Promise tracking off, like `loopsight`.
  'loopsight-profiler': (app) => app.use(loopsight({ promises: false, loopLag: { profiler: true } })),
  'loopsight-no-looplag': (app) => app.use(loopsight({ promises: false, loopLag: false })),
  'watchdog-debugger-always': (app) => {
    app.use(loopsight({ promises: false, loopLag: false }));
    watchdog('always');
  },
  'watchdog-debugger-on-stall': (app) => {
    app.use(loopsight({ promises: false, loopLag: false }));
    watchdog('on-stall');
  },
};

/** The stall watchdog alone, to compare keeping the debugger enabled with enabling it per stall. */
function watchdog(debuggerMode) {
  createStallWatchdog({
    thresholdMs: 100,
    captureStacks: true,
    debuggerMode,
    getScope: () => undefined,
    inflight: () => 0,
    onStall: () => {},
    onError: (what, error) => console.error(what, error),
  }).start();
}

const { name, setup } = pickVariant(variants);
const app = express();
await setup(app);
app.get('/hello', (_req, res) => {
  res.json({ hello: 'world' });
});
app.get('/awaits', async (_req, res) => {
  res.json(await tenAwaits());
});
app.get('/stream', (_req, res) => streamTo(res));

const server = http.createServer(app);
await new Promise((resolve) => server.listen(0, HOST, resolve));
serve(server, name);
