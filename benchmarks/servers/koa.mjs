// node servers/koa.mjs <variant>: a Koa 3 app with @koa/router serving GET /hello → { hello: 'world' }.
// A variant is what is mounted before the router; add one here and list it in configs.mjs.
import http from 'node:http';
import Router from '@koa/router';
import { loopsight } from '@loopsight/koa';
import Koa from 'koa';
import { alsFloorKoa } from './lib/als-floor.mjs';
import { HOST, pickVariant, serve } from './lib/harness.mjs';

const variants = {
  bare: () => {},
  'als-floor': (app) => app.use(alsFloorKoa),
  loopsight: (app) => app.use(loopsight()),
};

const { name, setup } = pickVariant(variants);
const app = new Koa();
await setup(app);
const router = new Router();
router.get('/hello', (ctx) => {
  ctx.body = { hello: 'world' };
});
app.use(router.routes());
app.use(router.allowedMethods());

const server = http.createServer(app.callback());
await new Promise((resolve) => server.listen(0, HOST, resolve));
serve(server, name);
