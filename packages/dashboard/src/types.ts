import type { IncomingMessage, ServerResponse } from 'node:http';

/** Options of `createDashboard()`, each checked at construction (a TypeError names a bad one). */
export interface DashboardOptions {
  /** Where the page is served, a path starting with '/' (no trailing slash, no query). Default '/loopsight'. */
  path?: string;
  /**
   * Decides whether a request may see the page and its feed (every request under `path`: page,
   * script, styles, feed). `false` (or a throw, or a rejected promise) answers 403. Default: only
   * requests from a loopback address (127.0.0.1, ::1) whose `Host` names this machine (localhost,
   * *.localhost, 127.0.0.1, [::1], the server's own address, or one of `allowedHosts`) are allowed.
   * Never expose the page publicly: it shows ids, routes, function names and file paths.
   */
  authorize?: (req: IncomingMessage) => boolean | Promise<boolean>;
  /**
   * More `Host` names the default `authorize` accepts (no port; '.example.com' allows its
   * subdomains too): a name of this machine in /etc/hosts, say. At most 100. Only with the default
   * `authorize` (a TypeError when both are given).
   */
  allowedHosts?: string[];
  /** Recent stalls, and recent promise reports, kept for the page: an integer from 1 to 1000. Default 50 of each. */
  maxReports?: number;
  /** Seconds of chart history kept, one point a second whether a page is open or not: an integer from 1 to 3600. Default 300 (5 minutes). */
  historySeconds?: number;
  /** Pages open at once (each holds one server-sent events stream): an integer from 1 to 100. Default 10. */
  maxClients?: number;
  /** Requests in flight listed, oldest first: an integer from 1 to 1000. Default 20. */
  maxInflightShown?: number;
  /**
   * Seconds one feed stream lasts before the server ends it and the page opens the next one (with
   * a fresh snapshot): how long a client that stopped reading can hold one of `maxClients`. An
   * integer from 1 to 3600. Default 60.
   */
  feedSeconds?: number;
}

/** A Koa context, as far as the dashboard reads it. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
  respond?: boolean;
}

/** The part of a Fastify 4 or 5 instance the dashboard's plugin uses (HEAD routes come with GET). */
export interface FastifyInstanceLike {
  route(options: {
    method: string[];
    url: string;
    handler: (request: { raw: IncomingMessage }, reply: { raw: ServerResponse; hijack(): unknown }) => void;
  }): unknown;
}

/**
 * The live page of one Monitor. Nothing is served until it is mounted; mount it with the helper of
 * your framework, or call `handle` from any node:http server. See docs/dashboard.md.
 */
export interface Dashboard {
  /** The path it answers under. */
  readonly path: string;
  /**
   * A node:http handler: answers and returns true when the request's path is the dashboard's
   * (`path` or below), returns false without touching the response otherwise.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Express 4 and 5 middleware: `app.use(dashboard.express)`. */
  readonly express: (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;
  /** Koa 2 and 3 middleware: `app.use(dashboard.koa)`. */
  readonly koa: (ctx: KoaContextLike, next: () => Promise<unknown>) => Promise<unknown>;
  /** A Fastify 4 and 5 plugin adding the dashboard's routes: `app.register(dashboard.fastify)` (no `prefix`). */
  readonly fastify: (instance: FastifyInstanceLike, options: unknown, done: (error?: Error) => void) => void;
  /** Ends every open feed and lets go of the monitor's events. The monitor's stop() calls it too. Idempotent. */
  close(): void;
}
