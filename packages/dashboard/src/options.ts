import type { IncomingMessage } from 'node:http';
import { positiveInteger } from '@loopsight/core/internal';
import type { DashboardOptions } from './types.js';

export interface ResolvedDashboardOptions {
  readonly path: string;
  readonly authorize: (req: IncomingMessage) => boolean | Promise<boolean>;
  readonly maxReports: number;
  readonly historySeconds: number;
  readonly maxClients: number;
  readonly maxInflightShown: number;
}

const KNOWN = ['path', 'authorize', 'maxReports', 'historySeconds', 'maxClients', 'maxInflightShown'] as const;

// A path made of plain URL path characters: it is written into the page's HTML and matched against
// raw request URLs, so nothing that needs escaping or decoding.
const PATH = /^(\/[A-Za-z0-9._~-]+)+$/;

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** The default `authorize`: the page is for the machine it runs on unless the user says otherwise. */
function loopbackOnly(req: IncomingMessage): boolean {
  return LOOPBACK.has(req.socket.remoteAddress ?? '');
}

export function resolveDashboardOptions(options: DashboardOptions | undefined): ResolvedDashboardOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new TypeError('loopsight: dashboard options must be an object');
  }
  const given: DashboardOptions = options ?? {};
  for (const key of Object.keys(given)) {
    if (!(KNOWN as readonly string[]).includes(key)) {
      throw new TypeError(`loopsight: unknown option options.${key}; accepted: ${KNOWN.join(', ')}`);
    }
  }
  const path = given.path ?? '/loopsight';
  if (typeof path !== 'string' || !PATH.test(path)) {
    throw new TypeError(
      `loopsight: options.path must be a path such as '/loopsight': '/' then segments of [A-Za-z0-9._~-], no trailing slash (got ${JSON.stringify(path)})`,
    );
  }
  const authorize = given.authorize ?? loopbackOnly;
  if (typeof authorize !== 'function') {
    throw new TypeError('loopsight: options.authorize must be a function (req) => boolean | Promise<boolean>');
  }
  return Object.freeze({
    path,
    authorize,
    maxReports: positiveInteger('maxReports', given.maxReports ?? 50, 1000),
    historySeconds: positiveInteger('historySeconds', given.historySeconds ?? 300, 3600),
    maxClients: positiveInteger('maxClients', given.maxClients ?? 10, 100),
    maxInflightShown: positiveInteger('maxInflightShown', given.maxInflightShown ?? 20, 1000),
  });
}
