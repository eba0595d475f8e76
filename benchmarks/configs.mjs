// What is measured. Each entry is one server process: `node [execArgv] servers/<framework>.mjs <variant>`.
// To add a configuration (an exporter, promise tracking, a peer library), add a variant to the
// framework's server file and an entry here. The first entry of every framework must be the
// baseline `bare`; the entry with `control: true` is the same server measured again (A/A), whose
// ratio to `bare` is the noise floor of the run.

/**
 * @typedef {object} Config
 * @property {string} label shown in the tables; unique per framework
 * @property {string} variant the server's variant (servers/<framework>.mjs)
 * @property {string} [route] the route measured (default ROUTE); one of ROUTES
 * @property {string} [base] label of the configuration its ratios are taken against (default: the first, `bare`)
 * @property {boolean} [control] the A/A control
 * @property {boolean} [echoesId] answers with the incoming x-request-id (checked before the load)
 * @property {string[]} [execArgv] Node options of the server process
 * @property {boolean} [optional] measured only when named with --only
 * @property {string} [kind] 'loopsight', 'floor', 'peer' or 'ablation': which rows the summary compares
 */

export { ROUTES } from './servers/lib/routes.mjs';

/** The route measured unless a configuration names another. */
export const ROUTE = '/hello';
export const AWAITS = '/awaits';
const BARE_AWAITS = 'bare, /awaits';
const STREAM = '/stream';
const BARE_STREAM = 'bare, /stream';

/**
 * The streaming route (64 writes per request) for the backpressure watch's cost: bare, its A/A
 * control, the ALS floor, loopsight with and without the watch. Optional: run with
 * --only "bare, /stream,bare (A/A), /stream,als-floor, /stream,loopsight, promises off, /stream,loopsight, backpressure off, /stream".
 */
const streaming = [
  { label: BARE_STREAM, variant: 'bare', route: STREAM, optional: true },
  { label: 'bare (A/A), /stream', variant: 'bare', route: STREAM, base: BARE_STREAM, optional: true },
  { label: 'als-floor, /stream', variant: 'als-floor', route: STREAM, base: BARE_STREAM, echoesId: true, optional: true },
  { label: 'loopsight, promises off, /stream', variant: 'loopsight', route: STREAM, base: BARE_STREAM, echoesId: true, optional: true },
  {
    label: 'loopsight, backpressure off, /stream',
    variant: 'loopsight-no-backpressure',
    route: STREAM,
    base: BARE_STREAM,
    echoesId: true,
    optional: true,
  },
];

/** @type {Config[]} */
const common = [
  { label: 'bare', variant: 'bare' },
  { label: 'bare (A/A control)', variant: 'bare', control: true },
  { label: 'als-floor', variant: 'als-floor', echoesId: true, kind: 'floor' },
  { label: 'loopsight, promises off', variant: 'loopsight', echoesId: true, kind: 'loopsight' },
  { label: '+ prometheus exporter', variant: 'loopsight-prometheus', echoesId: true, kind: 'loopsight' },
  // The dashboard's cost while no page is open: within the noise of 'loopsight, promises off'.
  { label: '+ dashboard mounted, no page open', variant: 'loopsight-dashboard', echoesId: true, kind: 'loopsight' },
  { label: 'loopsight() (promises sampled 1 s/30 s)', variant: 'loopsight-promises-sampled', echoesId: true, kind: 'loopsight' },
  { label: '+ promises sampled, 33 ms/1 s', variant: 'loopsight-promises-sampled-scaled', echoesId: true, kind: 'loopsight' },
  { label: '+ promises full', variant: 'loopsight-promises-full', echoesId: true, kind: 'loopsight' },
  // The zero-code start (issue 19): the bare app under the preload, to set against loopsight() (promises sampled) above.
  {
    label: 'preload (--import @loopsight/register)',
    variant: 'bare',
    execArgv: ['--import', '@loopsight/register'],
    echoesId: true,
    kind: 'loopsight',
  },
  { label: BARE_AWAITS, variant: 'bare', route: AWAITS },
  { label: 'loopsight, promises off, /awaits', variant: 'loopsight', route: AWAITS, base: BARE_AWAITS, echoesId: true, kind: 'loopsight' },
  {
    label: '+ promises full, /awaits',
    variant: 'loopsight-promises-full',
    route: AWAITS,
    base: BARE_AWAITS,
    echoesId: true,
    kind: 'loopsight',
  },
];

const rtracer = { label: 'cls-rtracer', variant: 'cls-rtracer', echoesId: true, kind: 'peer' };
const promClient = { label: 'prom-client defaults + histogram', variant: 'prom-client', kind: 'peer' };

/**
 * Issue 27: what runs beside the request path. loopsight() as shipped is the row
 * 'loopsight() (promises sampled 1 s/30 s)'; each row here turns one of its parts off, and the
 * report's attribution table takes the difference (run with --only, see docs/benchmarks.md).
 * `loopLag` cannot turn the watchdog thread off alone: the last row is loopLag off plus the
 * sampler core would run (servers/lib/variants.mjs).
 */
const sidePaths = [
  { label: 'defaults, loopLag off', variant: 'defaults-no-looplag', echoesId: true, optional: true, kind: 'ablation' },
  { label: 'defaults, captureStacks off', variant: 'defaults-no-stacks', echoesId: true, optional: true, kind: 'ablation' },
  {
    label: 'defaults, watchdog off (loopLag off + 10 ms sampler)',
    variant: 'defaults-no-watchdog',
    echoesId: true,
    optional: true,
    kind: 'ablation',
  },
];

/** Nest on either platform: the module against bare Nest and the floor on /hello, nestjs-cls as the peer. */
const NEST_VARIANTS = new Set(['bare', 'als-floor', 'loopsight', 'loopsight-promises-sampled']);
const nest = [
  ...common.filter((c) => NEST_VARIANTS.has(c.variant) && c.route === undefined),
  { label: 'nestjs-cls', variant: 'nestjs-cls', kind: 'peer' },
];

/** @type {Record<string, Config[]>} */
export const frameworks = {
  express: [
    ...common,
    rtracer,
    { label: 'express-http-context', variant: 'express-http-context', echoesId: true, kind: 'peer' },
    promClient,
    { label: 'OTel http + express', variant: 'otel', execArgv: ['--import', './servers/lib/otel-setup.mjs'], kind: 'peer' },
    // Ablations (issue 4): the watchdog's debugger mode and the sampling profiler. Promise tracking off.
    { label: 'loopsight, profiler on', variant: 'loopsight-profiler', echoesId: true, optional: true, kind: 'ablation' },
    { label: 'loopsight, loopLag off', variant: 'loopsight-no-looplag', echoesId: true, optional: true, kind: 'ablation' },
    {
      label: 'loopLag off + watchdog, debugger always on',
      variant: 'watchdog-debugger-always',
      echoesId: true,
      optional: true,
      kind: 'ablation',
    },
    {
      label: 'loopLag off + watchdog, debugger on stall',
      variant: 'watchdog-debugger-on-stall',
      echoesId: true,
      optional: true,
      kind: 'ablation',
    },
    ...sidePaths,
    ...streaming,
  ],
  fastify: [
    ...common,
    { label: 'loopsight, promises off, shed at 1 s', variant: 'loopsight-shed', echoesId: true, kind: 'loopsight' },
    rtracer,
    { label: '@fastify/request-context', variant: 'request-context', echoesId: true, kind: 'peer' },
    { label: '@fastify/under-pressure at 1 s', variant: 'under-pressure', kind: 'peer' },
    promClient,
    // Ablations: where loopsight's cost above the floor goes.
    { label: 'als-floor, raw header', variant: 'als-floor-raw-header', echoesId: true, optional: true, kind: 'ablation' },
    { label: 'loopsight, echo off', variant: 'loopsight-no-echo', optional: true, kind: 'ablation' },
    { label: 'loopsight, loopLag off', variant: 'loopsight-no-looplag', echoesId: true, optional: true, kind: 'ablation' },
    ...sidePaths,
  ],
  koa: [...common, rtracer, promClient, ...sidePaths],
  nestjs: nest,
  'nestjs-fastify': nest,
  hono: [
    // The dashboard mounts on Express, Fastify and Koa (docs/dashboard.md): no Hono row.
    ...common.filter((c) => c.variant !== 'loopsight-dashboard'),
    { label: 'hono/request-id', variant: 'request-id', echoesId: true, kind: 'peer' },
    { label: 'hono/request-id + hono/context-storage', variant: 'request-id-context-storage', echoesId: true, kind: 'peer' },
    promClient,
  ],
};
