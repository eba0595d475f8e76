import { createMonitor, isUserFrame, type MonitorOptions } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { describe, expect, it } from 'vitest';

const invalid: [string, unknown, string][] = [
  ['options', 'fast', 'options must be an object (got "fast")'],
  ['unknown top-level key', { loopLagg: {} }, 'unknown option options.loopLagg; accepted: loopLag, promises'],
  ['loopLag', { loopLag: 5 }, 'options.loopLag must be an object or false (got 5)'],
  ['loopLag unknown key', { loopLag: { threshold: 5 } }, 'unknown option options.loopLag.threshold'],
  ['loopLag.resolutionMs', { loopLag: { resolutionMs: 0 } }, 'options.loopLag.resolutionMs must be a positive integer up to 1000 (got 0)'],
  ['loopLag.resolutionMs fraction', { loopLag: { resolutionMs: 2.5 } }, 'options.loopLag.resolutionMs must be a positive integer'],
  [
    'loopLag.stallThresholdMs',
    { loopLag: { stallThresholdMs: -5 } },
    'options.loopLag.stallThresholdMs must be a positive number up to 3600000 (got -5)',
  ],
  [
    'loopLag.stallThresholdMs NaN',
    { loopLag: { stallThresholdMs: Number.NaN } },
    'options.loopLag.stallThresholdMs must be a positive number',
  ],
  [
    'loopLag.stallThresholdMs below the 10 ms floor',
    { loopLag: { stallThresholdMs: 0.001 } },
    'options.loopLag.stallThresholdMs must be a number of ms from 10 to 3600000 (got 0.001)',
  ],
  ['loopLag.captureStacks', { loopLag: { captureStacks: 'yes' } }, 'options.loopLag.captureStacks must be true or false (got "yes")'],
  ['loopLag.windowMs', { loopLag: { windowMs: 50 } }, 'options.loopLag.windowMs must be at least 10 × loopLag.resolutionMs (100) (got 50)'],
  ['promises', { promises: 'full' }, 'options.promises must be an object or false (got "full")'],
  ['promises.mode', { promises: { mode: 'always' } }, "options.promises.mode must be one of 'off', 'sampled', 'full' (got \"always\")"],
  ['promises.leakAfterMs', { promises: { leakAfterMs: -1 } }, 'options.promises.leakAfterMs must be a positive number'],
  ['correlation', { correlation: [] }, 'options.correlation must be an object (got an array)'],
  ['correlation unknown key', { correlation: { headers: 'x' } }, 'unknown option options.correlation.headers'],
  [
    'correlation.header',
    { correlation: { header: 'x request id' } },
    'options.correlation.header must be an HTTP header name (RFC 9110 token) (got "x request id")',
  ],
  ...['authorization', 'Set-Cookie', 'host', 'content-length', 'cookie', 'transfer-encoding', 'connection', 'traceparent'].map(
    (name): [string, unknown, string] => [
      `correlation.header ${name}`,
      { correlation: { header: name } },
      `options.correlation.header must be a header name other than authorization, proxy-authorization, cookie, set-cookie`,
    ],
  ),
  [
    'correlation.accept[0] authorization',
    { correlation: { accept: ['authorization'] } },
    'options.correlation.accept[0] must be a header name other than authorization',
  ],
  ['correlation.accept', { correlation: { accept: 'x-request-id' } }, 'options.correlation.accept must be an array of header names'],
  ['correlation.accept[1]', { correlation: { accept: ['x-id', 'bad:name'] } }, 'options.correlation.accept[1] must be an HTTP header name'],
  ['correlation.traceparent', { correlation: { traceparent: 1 } }, 'options.correlation.traceparent must be true or false (got 1)'],
  ['correlation.validate', { correlation: { validate: '^[a-z]+$' } }, 'options.correlation.validate must be a function'],
  ['correlation.generate', { correlation: { generate: 'uuid' } }, 'options.correlation.generate must be a function'],
  ['correlation.echo', { correlation: { echo: 'no' } }, 'options.correlation.echo must be true or false'],
  ['correlation.propagate', { correlation: { propagate: null } }, 'options.correlation.propagate must be true or false (got null)'],
  ['exporters', { exporters: {} }, 'options.exporters must be an array of exporters'],
  ['exporters[0]', { exporters: [{ name: 'x' }] }, 'options.exporters[0] must be an exporter ({ name: string, start(monitor), stop?() })'],
  ['onReport', { onReport: true }, 'options.onReport must be a function (got true)'],
  ['maxInflight', { maxInflight: 1.5 }, 'options.maxInflight must be a positive integer up to 1000000 (got 1.5)'],
  ['logger', { logger: console.log }, 'options.logger must be an object with a warn(message) method'],
  ['bindEmitters', { bindEmitters: 1 }, 'options.bindEmitters must be true or false (got 1)'],
];

describe('createMonitor options', () => {
  for (const [name, options, message] of invalid) {
    it(`refuses an invalid ${name} with a TypeError naming it`, () => {
      expect(() => createMonitor(options as MonitorOptions)).toThrow(TypeError);
      expect(() => createMonitor(options as MonitorOptions)).toThrow(message);
    });
  }

  it('merges defaults once into frozen options', () => {
    const monitor = createMonitor({ loopLag: { stallThresholdMs: 250 }, correlation: { header: 'X-Trace-Id' } });
    expect(internals(monitor).options.loopLag).toEqual({
      resolutionMs: 10,
      stallThresholdMs: 250,
      capture: 'auto',
      captureStacks: true,
      windowMs: 10_000,
      maxStacksPerMinute: 10,
      profiler: false,
      expected: undefined,
    });
    expect(internals(monitor).options.correlation.header).toBe('x-trace-id');
    expect(internals(monitor).options.promises).toEqual({
      mode: 'sampled',
      leakAfterMs: 5_000,
      sampleWindowMs: 1_000,
      sampleIntervalMs: 30_000,
      maxTracked: 10_000,
      stackDepth: 10,
      frameFilter: isUserFrame,
    });
    expect(Object.isFrozen(internals(monitor).options)).toBe(true);
    expect(Object.isFrozen(internals(monitor).options.loopLag)).toBe(true);
  });

  it('accepts false to turn loopLag and promises off', () => {
    const monitor = createMonitor({ loopLag: false, promises: false });
    expect(internals(monitor).options.loopLag).toBe(false);
    expect(internals(monitor).options.promises).toBe(false);
    expect(monitor.loopStats().count).toBe(0);
  });

  it('trusts traceparent only when accept is non-empty, or when traceparent is set to true', () => {
    expect(internals(createMonitor()).options.correlation.traceparent).toBe(true);
    expect(internals(createMonitor({ correlation: { accept: ['x-id'] } })).options.correlation.traceparent).toBe(true);
    expect(internals(createMonitor({ correlation: { accept: [] } })).options.correlation.traceparent).toBe(false);
    expect(internals(createMonitor({ correlation: { accept: [], traceparent: true } })).options.correlation.traceparent).toBe(true);
    expect(internals(createMonitor({ correlation: { traceparent: false } })).options.correlation.traceparent).toBe(false);
  });

  it('uses a global RegExp validator without lastIndex drift', () => {
    const monitor = createMonitor({ correlation: { validate: /^[a-z]+$/g } });
    const { validate } = internals(monitor).options.correlation;
    expect([validate('abc'), validate('abc'), validate('abc')]).toEqual([true, true, true]);
    expect(validate('ABC')).toBe(false);
  });
});

describe('promises options', () => {
  const invalidPromises: [string, unknown, string][] = [
    ['unknown key', { stackTraceLimit: 5 }, 'unknown option options.promises.stackTraceLimit'],
    ['sampleWindowMs', { sampleWindowMs: 0 }, 'options.promises.sampleWindowMs must be a positive number up to 3600000 (got 0)'],
    ['sampleIntervalMs', { sampleIntervalMs: 'often' }, 'options.promises.sampleIntervalMs must be a positive number'],
    [
      'sampleIntervalMs not above the window',
      { sampleWindowMs: 2_000, sampleIntervalMs: 1_000 },
      'options.promises.sampleIntervalMs must be greater than promises.sampleWindowMs (2000) (got 1000)',
    ],
    ['maxTracked', { maxTracked: 1.5 }, 'options.promises.maxTracked must be a positive integer'],
    ['stackDepth', { stackDepth: 500 }, 'options.promises.stackDepth must be a positive integer up to 200 (got 500)'],
    ['frameFilter', { frameFilter: /node_modules/ }, 'options.promises.frameFilter must be a function (got an object)'],
  ];
  for (const [name, promises, message] of invalidPromises) {
    it(`refuses an invalid promises.${name} with a TypeError naming it`, () => {
      expect(() => createMonitor({ promises } as MonitorOptions)).toThrow(TypeError);
      expect(() => createMonitor({ promises } as MonitorOptions)).toThrow(message);
    });
  }

  it('keeps what was given and fills in the rest', () => {
    const frameFilter = (url: string) => isUserFrame(url) || url.includes('/node_modules/@acme/');
    const monitor = createMonitor({ promises: { mode: 'full', maxTracked: 500, frameFilter } });
    expect(internals(monitor).options.promises).toMatchObject({
      mode: 'full',
      maxTracked: 500,
      frameFilter,
      leakAfterMs: 5_000,
      stackDepth: 10,
    });
    expect(Object.isFrozen(internals(monitor).options.promises)).toBe(true);
  });

  it('exposes the tracker counters, and none when promises are off', () => {
    expect(createMonitor({ promises: { mode: 'full', maxTracked: 500 } }).counters().promises).toEqual({
      mode: 'full',
      tracked: 0,
      maxTracked: 500,
      dropped: 0,
      sampling: false,
      windows: 0,
      reported: { floating: 0, leaked: 0, unhandled: 0 },
      suppressed: { floating: 0, leaked: 0, unhandled: 0 },
    });
    expect(createMonitor({ promises: { mode: 'off' } }).counters().promises).toBeUndefined();
    expect(createMonitor({ promises: false }).counters().promises).toBeUndefined();
  });
});

describe('loopLag options of the stall watchdog', () => {
  it('loopLag.expected takes route templates and a predicate, with a TypeError naming what is wrong', () => {
    const when = () => false;
    const { expected } = internals(createMonitor({ loopLag: { expected: { routes: ['/pdf/:id'], when } } })).options.loopLag as {
      expected: { routes: Set<string>; when: unknown };
    };
    expect([...expected.routes]).toEqual(['/pdf/:id']);
    expect(expected.when).toBe(when);
    expect(() => createMonitor({ loopLag: { expected: { routes: ['pdf'] } } })).toThrow(
      /options\.loopLag\.expected\.routes must be an array of at most 100 route templates starting with \//,
    );
    expect(() => createMonitor({ loopLag: { expected: { when: 'yes' as never } } })).toThrow(
      /options\.loopLag\.expected\.when must be a function/,
    );
    expect(() => createMonitor({ loopLag: { expected: { route: [] } as never } })).toThrow(/loopLag\.expected/);
    expect(() => createMonitor({ loopLag: { expected: [] as never } })).toThrow(/options\.loopLag\.expected must be an object/);
  });

  it("frameFilter is a function, and the promise tracker's unless promises.frameFilter says otherwise", () => {
    const mine = (url: string) => url.includes('/app/');
    expect(internals(createMonitor({ frameFilter: mine })).options).toMatchObject({ frameFilter: mine, promises: { frameFilter: mine } });
    const theirs = () => true;
    expect(internals(createMonitor({ frameFilter: mine, promises: { frameFilter: theirs } })).options.promises).toMatchObject({
      frameFilter: theirs,
    });
    expect(() => createMonitor({ frameFilter: /app/ as never })).toThrow(/options\.frameFilter must be/);
  });

  it('turns the profiler on with true or an interval, and refuses anything else', () => {
    expect(internals(createMonitor({ loopLag: { profiler: true } })).options.loopLag).toMatchObject({ profiler: { intervalMs: 10 } });
    expect(internals(createMonitor({ loopLag: { profiler: { intervalMs: 20 } } })).options.loopLag).toMatchObject({
      profiler: { intervalMs: 20 },
    });
    expect(() => createMonitor({ loopLag: { profiler: 'yes' as never } })).toThrow(
      /options\.loopLag\.profiler must be a boolean or \{ intervalMs \}/,
    );
    expect(() => createMonitor({ loopLag: { profiler: { intervalMs: 0 } } })).toThrow(
      /options\.loopLag\.profiler\.intervalMs must be a positive integer/,
    );
    expect(() => createMonitor({ loopLag: { maxStacksPerMinute: 2.5 } })).toThrow(
      /options\.loopLag\.maxStacksPerMinute must be a positive integer/,
    );
  });
});
