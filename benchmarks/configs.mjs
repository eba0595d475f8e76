// What is measured. Each entry is one server process: `node servers/<framework>.mjs <variant>`.
// To add a configuration (an exporter, promise tracking, a peer library), add a variant to the
// framework's server file and an entry here. The first entry of every framework must be the
// baseline `bare`; the entry with `control: true` is the same server measured again (A/A), whose
// ratio to `bare` is the noise floor of the run.

/**
 * @typedef {{ label: string, variant: string, control?: boolean, echoesId?: boolean, optional?: boolean }} Config
 * `optional` configurations are measured only when named with --only.
 */

/** @type {Config[]} */
const common = [
  { label: 'bare', variant: 'bare' },
  { label: 'bare (A/A control)', variant: 'bare', control: true },
  { label: 'als-floor', variant: 'als-floor', echoesId: true },
  { label: 'loopsight', variant: 'loopsight', echoesId: true },
];

/** @type {Record<string, Config[]>} */
export const frameworks = {
  express: [
    ...common,
    // Ablations: the watchdog's debugger mode and the sampling profiler.
    { label: 'loopsight, profiler on', variant: 'loopsight-profiler', echoesId: true, optional: true },
    { label: 'loopsight, loopLag off', variant: 'loopsight-no-looplag', echoesId: true, optional: true },
    { label: 'loopLag off + watchdog, debugger always on', variant: 'watchdog-debugger-always', echoesId: true, optional: true },
    { label: 'loopLag off + watchdog, debugger on stall', variant: 'watchdog-debugger-on-stall', echoesId: true, optional: true },
  ],
  fastify: [
    ...common,
    // Ablations: where loopsight's cost above the floor goes.
    { label: 'als-floor, raw header', variant: 'als-floor-raw-header', echoesId: true, optional: true },
    { label: 'loopsight, echo off', variant: 'loopsight-no-echo', optional: true },
    { label: 'loopsight, loopLag off', variant: 'loopsight-no-looplag', echoesId: true, optional: true },
  ],
  koa: common,
};

/** The route every server serves, and the body it answers with. */
export const ROUTE = '/hello';
export const EXPECTED_BODY = { hello: 'world' };
