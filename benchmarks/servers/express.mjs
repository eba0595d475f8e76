// node servers/express.mjs <variant>: an Express 5 app serving GET /hello → { hello: 'world' }.
// A variant is what is mounted before the route; add one here and list it in configs.mjs.
import http from 'node:http';
import { loopsight } from '@loopsight/express';
import { createStallWatchdog } from '@loopsight/loop-lag';
import express from 'express';
import { alsFloorExpress } from './lib/als-floor.mjs';
import { HOST, pickVariant, serve } from './lib/harness.mjs';

const variants = {
  bare: () => {},
  'als-floor': (app) => app.use(alsFloorExpress),
  loopsight: (app) => app.use(loopsight()),
  // Ablations (configs.mjs: optional, run with --only).
  'loopsight-profiler': (app) => app.use(loopsight({ loopLag: { profiler: true } })),
  'loopsight-no-looplag': (app) => app.use(loopsight({ loopLag: false })),
  'watchdog-debugger-always': (app) => {
    app.use(loopsight({ loopLag: false }));
    watchdog('always');
  },
  'watchdog-debugger-on-stall': (app) => {
    app.use(loopsight({ loopLag: false }));
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

const server = http.createServer(app);
await new Promise((resolve) => server.listen(0, HOST, resolve));
serve(server, name);
