// node servers/fastify.mjs <variant>: a Fastify 5 app serving GET /hello and GET /awaits (lib/routes.mjs).
// A variant is what is registered before the routes; add one here and list it in configs.mjs.
import { fastifyRequestContext, requestContext } from '@fastify/request-context';
import underPressure from '@fastify/under-pressure';
import { createDashboard } from '@loopsight/dashboard';
import { loopsight } from '@loopsight/fastify';
import { prometheusExporter } from '@loopsight/prometheus';
import rTracer from 'cls-rtracer';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { alsFloorFastify } from './lib/als-floor.mjs';
import { HOST, pickVariant, serve } from './lib/harness.mjs';
import { incomingOrNew, tenAwaits } from './lib/routes.mjs';
import { benchOptions, PROMISES_SAMPLED_SCALED, promClientMetrics, standaloneLoopSampler } from './lib/variants.mjs';

/** Limits of the two overload guards compared here: far above anything a healthy run reaches. */
const GUARD_DELAY_MS = 1000;

const variants = {
  bare: () => {},
  'als-floor': (app) => alsFloorFastify(app),
  // "loopsight defaults" of issue 8: context + loop stats + stall watchdog, promise tracking off.
  loopsight: async (app) => {
    await app.register(loopsight, benchOptions({ promises: false }));
  },
  'loopsight-prometheus': async (app) => {
    await app.register(loopsight, benchOptions({ promises: false, exporters: [prometheusExporter({ registry: new Registry() })] }));
  },
  'loopsight-dashboard': async (app) => {
    await app.register(loopsight, benchOptions({ promises: false }));
    await app.register(createDashboard(app.loopsight).fastify);
  },
  // loopsight's defaults as shipped: the promise tracker is on, sampled (1 s windows every 30 s).
  'loopsight-promises-sampled': async (app) => {
    await app.register(loopsight, benchOptions({}));
  },
  'loopsight-promises-sampled-scaled': async (app) => {
    await app.register(loopsight, benchOptions({ promises: PROMISES_SAMPLED_SCALED }));
  },
  'loopsight-promises-full': async (app) => {
    await app.register(loopsight, benchOptions({ promises: { mode: 'full' } }));
  },
  // The overload guard, to compare with @fastify/under-pressure at the same limit.
  'loopsight-shed': async (app) => {
    await app.register(loopsight, benchOptions({ promises: false, shed: { maxEventLoopDelayMs: GUARD_DELAY_MS } }));
  },
  // Peers.
  'cls-rtracer': async (app) => {
    await app.register(rTracer.fastifyPlugin, { useHeader: true, echoHeader: true });
  },
  'request-context': async (app) => {
    await app.register(fastifyRequestContext, { defaultStoreValues: (req) => ({ requestId: incomingOrNew(req.headers) }) });
    app.addHook('onRequest', (_request, reply, done) => {
      reply.header('x-request-id', requestContext.get('requestId'));
      done();
    });
  },
  'under-pressure': async (app) => {
    await app.register(underPressure, { maxEventLoopDelay: GUARD_DELAY_MS });
  },
  'prom-client': (app) => {
    const duration = promClientMetrics();
    app.addHook('onResponse', (request, reply, done) => {
      duration.observe(
        { method: request.method, route: request.routeOptions.url ?? '', status_code: reply.statusCode },
        reply.elapsedTime / 1000,
      );
      done();
    });
  },
  // Ablations (configs.mjs: optional, run with --only): where loopsight's cost above the floor goes.
  'als-floor-raw-header': (app) => alsFloorFastify(app, { rawHeader: true }),
  'loopsight-no-echo': async (app) => {
    await app.register(loopsight, benchOptions({ promises: false, correlation: { echo: false } }));
  },
  'loopsight-no-looplag': async (app) => {
    await app.register(loopsight, benchOptions({ promises: false, loopLag: false }));
  },
  // Issue 27: loopsight's defaults (above: loopsight-promises-sampled) with one part off at a time.
  'defaults-no-looplag': async (app) => {
    await app.register(loopsight, benchOptions({ loopLag: false }));
  },
  'defaults-no-stacks': async (app) => {
    await app.register(loopsight, benchOptions({ loopLag: { captureStacks: false } }));
  },
  'defaults-no-watchdog': async (app) => {
    await app.register(loopsight, benchOptions({ loopLag: false }));
    standaloneLoopSampler();
  },
};

const { name, setup } = pickVariant(variants);
const app = Fastify({ logger: false });
await setup(app);
app.get('/hello', async () => ({ hello: 'world' }));
app.get('/awaits', () => tenAwaits());

await app.listen({ host: HOST, port: 0 });
serve(app.server, name, () => app.close());
