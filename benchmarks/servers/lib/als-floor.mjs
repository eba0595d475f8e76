// The least any context middleware can cost: take x-request-id or make one, echo it, and run the
// rest of the request inside AsyncLocalStorage. No validation, no in-flight registry, no events.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

const als = new AsyncLocalStorage();

const HEADER = 'x-request-id';

function idOf(headers) {
  const id = headers[HEADER];
  return typeof id === 'string' ? id : randomUUID();
}

/** Express: app.use(alsFloorExpress) */
export function alsFloorExpress(req, res, next) {
  const id = idOf(req.headers);
  res.setHeader(HEADER, id);
  als.run({ id }, next);
}

/**
 * Fastify: an onRequest hook on the root instance. `rawHeader` sets the header on the Node response
 * (as a framework-agnostic middleware would) instead of through Fastify's reply.
 */
export function alsFloorFastify(app, { rawHeader = false } = {}) {
  app.addHook('onRequest', (request, reply, done) => {
    const id = idOf(request.headers);
    if (rawHeader) reply.raw.setHeader(HEADER, id);
    else reply.header(HEADER, id);
    als.run({ id }, done);
  });
}

/** Koa: app.use(alsFloorKoa) */
export function alsFloorKoa(ctx, next) {
  const id = idOf(ctx.req.headers);
  ctx.set(HEADER, id);
  return als.run({ id }, next);
}

/** Hono on @hono/node-server: app.use(alsFloorHono); the header goes on the Node response, as loopsight's does. */
export function alsFloorHono(c, next) {
  const id = idOf(c.env.incoming.headers);
  c.env.outgoing.setHeader(HEADER, id);
  return als.run({ id }, next);
}
