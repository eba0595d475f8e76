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
  readonly feedSeconds: number;
}

const KNOWN = [
  'path',
  'authorize',
  'allowedHosts',
  'maxReports',
  'historySeconds',
  'maxClients',
  'maxInflightShown',
  'feedSeconds',
] as const;

// A path made of plain URL path characters: it is written into the page's HTML and matched against
// raw request URLs, so nothing that needs escaping or decoding.
const PATH = /^(\/[A-Za-z0-9._~-]+)+$/;

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
// Names a browser only ever resolves to this machine: a page of another site cannot be served
// under them, so a DNS-rebinding page (evil.example pointed at 127.0.0.1) never matches.
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);
// A host name ('.example.com' also allows its subdomains), or a bracketed IPv6 address.
const HOST_ENTRY = /^(\.?[a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/;
const MAX_ALLOWED_HOSTS = 100;

/** The name of a `Host` header (`name`, `name:port`, `[v6]:port`), lowercase, no port; undefined when malformed. */
function hostName(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > 300) return undefined;
  let name: string;
  let rest: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end === -1) return undefined;
    name = value.slice(0, end + 1);
    rest = value.slice(end + 1);
  } else {
    const colon = value.indexOf(':');
    name = colon === -1 ? value : value.slice(0, colon);
    rest = colon === -1 ? '' : value.slice(colon);
  }
  if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
  name = name.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name === '' ? undefined : name;
}

/** The server's own address as a `Host` header names it. */
function ownName(address: string | undefined): string | undefined {
  if (!address) return undefined;
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  return address.includes(':') ? `[${address.toLowerCase()}]` : address;
}

/**
 * The default `authorize`: the page is for the machine it runs on. The client must be on a
 * loopback address, and the `Host` it asked for must name this machine (a loopback name, the
 * server's own address, or one of `allowedHosts`): a page of another site that rebinds its name
 * to 127.0.0.1 is refused. The port is not checked: a port-forward or a tunnel changes it.
 */
function localOnly(allowedHosts: readonly string[]): (req: IncomingMessage) => boolean {
  const exact = new Set(allowedHosts.filter((h) => !h.startsWith('.')));
  const suffixes = allowedHosts.filter((h) => h.startsWith('.'));
  return (req) => {
    if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) return false;
    const name = hostName(req.headers.host ?? req.headers[':authority']);
    if (name === undefined) return false;
    if (LOOPBACK_NAMES.has(name) || name.endsWith('.localhost') || exact.has(name)) return true;
    if (name === ownName(req.socket.localAddress)) return true;
    return suffixes.some((s) => name === s.slice(1) || name.endsWith(s));
  };
}

function resolveAllowedHosts(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_ALLOWED_HOSTS) {
    throw new TypeError(`loopsight: options.allowedHosts must be an array of at most ${MAX_ALLOWED_HOSTS} host names`);
  }
  return value.map((entry, i) => {
    const name = typeof entry === 'string' ? entry.toLowerCase() : '';
    if (name.length > 253 || !HOST_ENTRY.test(name)) {
      throw new TypeError(
        `loopsight: options.allowedHosts[${i}] must be a host name such as 'ops.example.com' or '.example.com' (no port, no scheme)`,
      );
    }
    return name;
  });
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
  const allowedHosts = resolveAllowedHosts(given.allowedHosts);
  if (given.authorize !== undefined && given.allowedHosts !== undefined) {
    // It would be ignored: the host check is the default authorize's.
    throw new TypeError('loopsight: options.allowedHosts applies to the default authorize only; check req.headers.host in your authorize');
  }
  const authorize = given.authorize ?? localOnly(allowedHosts);
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
    feedSeconds: positiveInteger('feedSeconds', given.feedSeconds ?? 60, 3600),
  });
}
