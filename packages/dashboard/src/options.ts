import type { IncomingMessage } from 'node:http';
import { array, custom, func, invalidOption, LoopsightTypeError, positive, resolveShape, type Shape, string } from '@loopsight/options';
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

const HOSTS_ACCEPTED = `an array of at most ${MAX_ALLOWED_HOSTS} host names`;

const SHAPE = {
  path: string({
    pattern: PATH,
    default: '/loopsight',
    accepted: "a path such as '/loopsight': '/' then segments of [A-Za-z0-9._~-], no trailing slash",
  }),
  authorize: func<ResolvedDashboardOptions['authorize']>(undefined, 'a function (req) => boolean | Promise<boolean>'),
  allowedHosts: array(
    custom("a host name such as 'ops.example.com' or '.example.com' (no port, no scheme)", (value, path) => {
      const name = typeof value === 'string' ? value.toLowerCase() : '';
      if (name.length > 253 || !HOST_ENTRY.test(name)) {
        invalidOption(path, "a host name such as 'ops.example.com' or '.example.com' (no port, no scheme)", value);
      }
      return name;
    }),
    { max: MAX_ALLOWED_HOSTS, accepted: HOSTS_ACCEPTED },
  ),
  maxReports: positive({ integer: true, max: 1000, default: 50 }),
  historySeconds: positive({ integer: true, max: 3600, default: 300 }),
  maxClients: positive({ integer: true, max: 100, default: 10 }),
  maxInflightShown: positive({ integer: true, max: 1000, default: 20 }),
  feedSeconds: positive({ integer: true, max: 3600, default: 60 }),
} satisfies Shape;

export function resolveDashboardOptions(options: DashboardOptions | undefined): ResolvedDashboardOptions {
  const { allowedHosts, authorize, ...rest } = resolveShape(SHAPE, options);
  if (authorize !== undefined && allowedHosts !== undefined) {
    // It would be ignored: the host check is the default authorize's.
    throw new LoopsightTypeError(
      'ERR_LOOPSIGHT_INVALID_OPTION',
      'loopsight: options.allowedHosts applies to the default authorize only; check req.headers.host in your authorize',
      { path: 'allowedHosts' },
    );
  }
  return Object.freeze({ ...rest, authorize: authorize ?? localOnly(allowedHosts ?? []) });
}
