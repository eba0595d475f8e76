import type { IncomingMessage, ServerResponse } from 'node:http';
import { currentScope, type Monitor } from '@loopsight/core';
import { LoopsightTypeError, warning } from '@loopsight/options';
import { asset, page, SECURITY_HEADERS } from './assets.js';
import { Feed } from './feed.js';
import { resolveDashboardOptions } from './options.js';
import type { Dashboard, DashboardOptions, FastifyInstanceLike, KoaContextLike } from './types.js';

function isMonitor(value: unknown): value is Monitor {
  const m = value as Partial<Monitor> | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    typeof m.on === 'function' &&
    typeof m.off === 'function' &&
    typeof m.loopStats === 'function' &&
    typeof m.attach === 'function'
  );
}

function plain(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(body);
}

let made = 0;

/**
 * A live page for one Monitor: loop delay and utilization charts, recent stalls with their culprit
 * and request, floating/leaked/unhandled promises, requests in flight, shed state and counters.
 * Served only where you mount it, to requests `authorize` allows (default: loopback only).
 *
 * @example
 * const ls = loopsight();
 * app.use(ls);
 * app.use(createDashboard(ls.monitor, { authorize: (req) => isAdmin(req) }).express);
 * // open http://localhost:3000/loopsight
 */
export function createDashboard(monitor: Monitor, options?: DashboardOptions): Dashboard {
  if (!isMonitor(monitor)) {
    throw new LoopsightTypeError(
      'ERR_LOOPSIGHT_NOT_A_MONITOR',
      "loopsight: createDashboard(monitor) takes a Monitor: the middleware's .monitor (Express, Koa), app.loopsight (Fastify) or createMonitor()",
    );
  }
  const resolved = resolveDashboardOptions(options);
  const { path, authorize } = resolved;
  const feed = new Feed(monitor, resolved);
  let closed = false;
  // Started and stopped with the monitor: monitor.stop() ends the feeds too.
  monitor.attach({
    name: `loopsight-dashboard#${++made}`,
    start: () => {
      if (!closed) feed.start();
    },
    stop: () => feed.stop(),
  });

  async function allowed(req: IncomingMessage): Promise<boolean> {
    try {
      return (await authorize(req)) === true;
    } catch (error) {
      monitor.reportError('dashboard authorize', warning('LOOPSIGHT_CALLBACK_THREW', error, { site: 'dashboard.authorize' }));
      return false;
    }
  }

  async function serve(req: IncomingMessage, res: ServerResponse, subpath: string): Promise<void> {
    if (!(await allowed(req))) return plain(res, 403, 'Forbidden\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'Method Not Allowed\n', { allow: 'GET, HEAD' });
    if (subpath === '' || subpath === '/') {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : page(path));
      return;
    }
    if (subpath === '/events') {
      // A stopped monitor reports nothing: a feed would show a frozen service as a quiet one.
      if (closed || !monitor.running) return plain(res, 503, 'loopsight dashboard: the monitor is stopped\n');
      feed.connect(res, req.method === 'HEAD');
      return;
    }
    const loading = asset(subpath);
    if (loading === undefined) return plain(res, 404, 'Not Found\n');
    let file: Awaited<typeof loading>;
    try {
      file = await loading;
    } catch (error) {
      monitor.reportError(
        'dashboard: the page files are missing (dist/client); build @loopsight/dashboard',
        warning('LOOPSIGHT_DASHBOARD', error, { site: 'page' }),
      );
      return plain(res, 500, 'loopsight dashboard: the page files are missing\n');
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type, 'content-length': String(file.body.length) });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  }

  function handleUrl(url: string, req: IncomingMessage, res: ServerResponse): boolean {
    const q = url.indexOf('?');
    const pathname = q === -1 ? url : url.slice(0, q);
    if (pathname !== path && !pathname.startsWith(`${path}/`)) return false;
    // Mounted after loopsight's middleware, the dashboard's own requests have a scope: its feeds
    // stay open for as long as the page, and would sit at the top of the in-flight list.
    const own = currentScope();
    if (own) feed.markOwn(own);
    serve(req, res, pathname.slice(path.length)).catch((error: unknown) => {
      monitor.reportError('dashboard request', warning('LOOPSIGHT_DASHBOARD', error, { site: 'request' }));
      if (!res.headersSent) plain(res, 500, 'Internal Server Error\n');
      else res.destroy();
    });
    return true;
  }

  const handle = (req: IncomingMessage, res: ServerResponse): boolean => handleUrl(req.url ?? '/', req, res);

  return {
    path,
    handle,
    // Express rewrites req.url below a mount point; originalUrl is the path the client asked for.
    express: (req, res, next) => {
      if (!handleUrl((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/', req, res)) next();
    },
    koa: async (ctx: KoaContextLike, next) => {
      if (!handle(ctx.req, ctx.res)) return next();
      // The response is written on ctx.res directly: Koa must leave it alone.
      ctx.respond = false;
      return undefined;
    },
    fastify: (instance: FastifyInstanceLike, _options, done) => {
      const handler = (request: { raw: IncomingMessage }, reply: { raw: ServerResponse; hijack(): unknown }) => {
        reply.hijack();
        if (!handle(request.raw, reply.raw)) plain(reply.raw, 404, 'Not Found\n');
      };
      instance.route({ method: ['GET'], url: path, handler });
      instance.route({ method: ['GET'], url: `${path}/*`, handler });
      done();
    },
    close: () => {
      closed = true;
      feed.stop();
    },
  };
}
