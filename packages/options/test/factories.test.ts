// Every factory that takes options refuses a misspelled one with a coded TypeError that names it
// and suggests the name meant; the preload does the same for a misspelled LOOPSIGHT_* variable.
import { createMonitor } from '@loopsight/core';
import { createDashboard } from '@loopsight/dashboard';
import { loopsight as express } from '@loopsight/express';
import { loopsight as fastifyPlugin } from '@loopsight/fastify';
import { loopsight as hono } from '@loopsight/hono';
import { loopsight as koa } from '@loopsight/koa';
import { createLoopDelayRecorder, createOverloadGuard, createStallWatchdog } from '@loopsight/loop-lag';
import { LoopsightModule } from '@loopsight/nestjs';
import { isLoopsightError } from '@loopsight/options';
import { otelExporter } from '@loopsight/otel';
import { prometheusExporter } from '@loopsight/prometheus';
import { createPromiseTracker } from '@loopsight/promises';
import fastify from 'fastify';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { readConfig } from '../../register/src/env.js';

const unknown = (path: string, meant: string) =>
  expect.objectContaining({
    name: 'TypeError',
    code: 'ERR_LOOPSIGHT_UNKNOWN_OPTION',
    path,
    message: expect.stringMatching(
      new RegExp(`^loopsight: unknown option options\\.${path.replace('.', '\\.')}; accepted: .+; did you mean '${meant}'\\?$`),
    ),
  });

const watchdogOptions = { thresholdMs: 100, getScope: () => undefined, inflight: () => 0, onStall: () => {}, onError: () => {} };
const noop = () => {};

describe('a misspelled option is refused with the name meant', () => {
  const cases: [string, () => unknown, string, string][] = [
    ['createMonitor', () => createMonitor({ loopLagg: {} } as never), 'loopLagg', 'loopLag'],
    ['createMonitor, nested', () => createMonitor({ loopLag: { treshold: 200 } } as never), 'loopLag.treshold', 'stallThresholdMs'],
    ['createMonitor, promises', () => createMonitor({ promises: { leakAfter: 1 } } as never), 'promises.leakAfter', 'leakAfterMs'],
    [
      'createMonitor, shed',
      () => createMonitor({ shed: { maxEventLoopDelay: 100 } } as never),
      'shed.maxEventLoopDelay',
      'maxEventLoopDelayMs',
    ],
    ['createMonitor, correlation', () => createMonitor({ correlation: { headers: 'x-id' } } as never), 'correlation.headers', 'header'],
    ['@loopsight/express loopsight()', () => express({ exporter: [] } as never), 'exporter', 'exporters'],
    ['@loopsight/koa loopsight()', () => koa({ promise: false } as never), 'promise', 'promises'],
    ['@loopsight/hono loopsight()', () => hono({ monitr: undefined } as never), 'monitr', 'monitor'],
    ['LoopsightModule.forRoot()', () => LoopsightModule.forRoot({ maxInFlight: 10 } as never), 'maxInFlight', 'maxInflight'],
    [
      'LoopsightModule.forRootAsync()',
      () => LoopsightModule.forRootAsync({ useFactory: () => ({}), injects: [] } as never),
      'injects',
      'inject',
    ],
    ['prometheusExporter', () => prometheusExporter({ registry: new Registry(), prefx: 'app_' } as never), 'prefx', 'prefix'],
    ['otelExporter', () => otelExporter({ trace: false } as never), 'trace', 'traces'],
    ['createDashboard', () => createDashboard(createMonitor(), { allowedHost: ['a.test'] } as never), 'allowedHost', 'allowedHosts'],
    [
      'createOverloadGuard',
      () => createOverloadGuard({ maxEventLoopDelayMs: 100, sampleInterval: 500 } as never),
      'sampleInterval',
      'sampleIntervalMs',
    ],
    [
      'createStallWatchdog',
      () => createStallWatchdog({ ...watchdogOptions, captureStack: false } as never),
      'captureStack',
      'captureStacks',
    ],
    [
      'createPromiseTracker',
      () => createPromiseTracker({ getScope: noop, onReport: noop, leakAfter: 5 } as never),
      'leakAfter',
      'leakAfterMs',
    ],
  ];

  it.each(cases)('%s', (_name, make, path, meant) => {
    expect(make).toThrow(unknown(path, meant));
  });

  it('@loopsight/fastify: app.register(loopsight, options) fails the app with it', async () => {
    const app = fastify();
    app.register(fastifyPlugin, { frameFiltr: () => true } as never);
    await expect(app.ready()).rejects.toThrow(unknown('frameFiltr', 'frameFilter'));
    await app.close();
  });
});

describe('a refused value is named with what it accepts', () => {
  it.each([
    ['createOverloadGuard, no limit', () => createOverloadGuard({ sampleIntervalMs: 500 }), '', /at least one of maxEventLoopDelayMs/],
    [
      'createOverloadGuard',
      () => createOverloadGuard({ maxEventLoopUtilization: 2, sampleIntervalMs: 500 }),
      'maxEventLoopUtilization',
      /must be a number in \(0, 1\] \(got 2\)/,
    ],
    [
      'createLoopDelayRecorder',
      () => createLoopDelayRecorder(0),
      'resolutionMs',
      /resolutionMs must be an integer from 1 to 1000 \(ms\) \(got 0\)/,
    ],
    [
      'createStallWatchdog',
      () => createStallWatchdog({ ...watchdogOptions, maxStacksPerMinute: 0 }),
      'maxStacksPerMinute',
      /from 1 to 6000/,
    ],
    [
      'createPromiseTracker',
      () => createPromiseTracker({ getScope: noop, onReport: noop, mode: 'off' as never }),
      'mode',
      /one of 'sampled', 'full'/,
    ],
  ])('%s', (_name, make, path, message) => {
    expect(make).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_LOOPSIGHT_INVALID_OPTION', path }));
    expect(make).toThrow(message);
  });
});

describe('@loopsight/register: LOOPSIGHT_* variables', () => {
  const read = (env: Record<string, string>) => {
    const lines: string[] = [];
    const config = readConfig(env, (line) => lines.push(line));
    return { config, lines };
  };

  it('a misspelled variable is said with the one meant, coded; its value is never shown', () => {
    const { lines } = read({ LOOPSIGHT_STALL_THRESHOLD: 'secret-value', LOOPSIGHT_METRIC_PORT: '9464', LOOPSIGHT_WORKERS: '4' });
    expect(lines).toEqual([
      'loopsight: LOOPSIGHT_STALL_THRESHOLD is not a variable loopsight reads (ignored); did you mean LOOPSIGHT_STALL_THRESHOLD_MS? [LOOPSIGHT_ENV_UNKNOWN]',
      'loopsight: LOOPSIGHT_METRIC_PORT is not a variable loopsight reads (ignored); did you mean LOOPSIGHT_METRICS_PORT? [LOOPSIGHT_ENV_UNKNOWN]',
    ]);
  });

  it("a bad value is said by core's own rule for the option, coded, and the default applies", () => {
    const { config, lines } = read({ LOOPSIGHT_STALL_THRESHOLD_MS: '5', LOOPSIGHT_HEADER: 'cookie', LOOPSIGHT_ECHO: 'maybe' });
    expect(lines).toEqual([
      'loopsight: LOOPSIGHT_STALL_THRESHOLD_MS="5" ignored: options.loopLag.stallThresholdMs must be a number of ms from 10 to 3600000; the default applies [LOOPSIGHT_ENV_IGNORED]',
      expect.stringMatching(
        /^loopsight: LOOPSIGHT_HEADER="cookie" ignored: options\.correlation\.header must be a header name other than .+; the default applies \[LOOPSIGHT_ENV_IGNORED\]$/,
      ),
      'loopsight: LOOPSIGHT_ECHO="maybe" ignored: must be true or false; the default applies [LOOPSIGHT_ENV_IGNORED]',
    ]);
    expect(config.monitor).toEqual({});
    expect(read({ LOOPSIGHT_STALL_THRESHOLD_MS: '250', LOOPSIGHT_HEADER: 'X-Trace-Id' }).config.monitor).toEqual({
      loopLag: { stallThresholdMs: 250 },
      correlation: { header: 'x-trace-id' },
    });
  });

  it('the errors it reads are loopsight errors, not text', () => {
    try {
      createMonitor({ loopLag: { stallThresholdMs: 5 } });
      expect.unreachable();
    } catch (error) {
      expect(isLoopsightError(error) && error.accepted).toBe('a number of ms from 10 to 3600000');
    }
  });
});
