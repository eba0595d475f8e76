import { enablePropagation } from '@loopsight/context';
import type { AdapterOptions, Monitor } from '@loopsight/core';
import { createHttpHandler, monitorFor, type ShedAnswer } from '@loopsight/core/adapter';
import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    /** The loopsight Monitor of this app. */
    loopsight: Monitor;
  }
}

export type LoopsightFastifyOptions = AdapterOptions;

// routeOptions.url arrived in Fastify 4.10; routerPath is its older name.
function fastifyRoute(reply: FastifyReply): string | undefined {
  const { request } = reply;
  return request.routeOptions?.url ?? (request as { routerPath?: string }).routerPath;
}

// Through Fastify's own header map: measured cheaper than res.setHeader, which Fastify then merges.
function fastifyHeader(reply: FastifyReply, name: string, value: string): void {
  reply.header(name, value);
}

// Replying from an onRequest hook without calling its callback is how Fastify ends a request early.
function fastifyRespond(reply: FastifyReply, answer: ShedAnswer): void {
  reply.code(answer.status).headers(answer.headers).send(answer.body);
}

const plugin: FastifyPluginCallback<LoopsightFastifyOptions> = (app, options, done) => {
  let monitor: Monitor;
  let owned: boolean;
  try {
    ({ monitor, owned } = monitorFor(Object.keys(options).length === 0 ? undefined : options));
  } catch (error) {
    done(error as Error);
    return;
  }
  const handle = createHttpHandler(monitor, {
    route: fastifyRoute,
    setHeader: fastifyHeader,
    respond: fastifyRespond,
    propagate: enablePropagation,
  });
  app.decorate('loopsight', monitor);
  app.addHook('onRequest', (request, reply, next) => {
    handle(request.raw, reply.raw, reply, next);
  });
  // A shared monitor belongs to whoever created it; only our own is stopped with the app.
  if (owned) app.addHook('onClose', (_app, next) => void monitor.stop().then(() => next(), next));
  monitor.start();
  done();
};

/**
 * Fastify 4 and 5 plugin: gives every request a correlation id and a scope, records its route
 * template and decorates `app.loopsight` with the Monitor.
 *
 * @example
 * const app = Fastify();
 * await app.register(loopsight, { loopLag: { stallThresholdMs: 200 } });
 * app.get('/users/:id', async () => ({ id: getCorrelationId() }));
 */
export const loopsight = fp(plugin, { fastify: '4.x || 5.x', name: '@loopsight/fastify' });
