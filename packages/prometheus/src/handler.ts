import type { IncomingMessage, ServerResponse } from 'node:http';
import { register } from 'prom-client';
import type { AnyRegistry } from './types.js';

/** The body and content type of one scrape. */
export interface Scrape {
  contentType: string;
  body: string;
}

/**
 * Reads a registry once, for frameworks that send the body themselves (Fastify, Koa).
 *
 * @example
 * app.get('/metrics', async (_request, reply) => {
 *   const { contentType, body } = await scrape(register);
 *   return reply.type(contentType).send(body);
 * });
 */
export async function scrape(registry: AnyRegistry = register): Promise<Scrape> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/**
 * A `(req, res)` handler that serves a registry: mount it on `/metrics` with Express, a bare
 * `http.createServer`, or any framework that hands out Node's request and response. A failing
 * registry answers 500 with the error message instead of throwing into the server.
 *
 * @example
 * app.get('/metrics', metricsHandler(register));                       // Express
 * router.get('/metrics', (ctx) => { ctx.respond = false; return metricsHandler()(ctx.req, ctx.res); }); // Koa
 */
export function metricsHandler(registry: AnyRegistry = register): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (_req, res) => {
    let result: Scrape;
    try {
      result = await scrape(registry);
    } catch (error) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`# metrics unavailable: ${error instanceof Error ? error.message : String(error)}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': result.contentType, 'content-length': Buffer.byteLength(result.body) });
    res.end(result.body);
  };
}
