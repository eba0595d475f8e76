import './setup-tracing.js';
import { createMonitor, currentScope, type RequestScope } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { otelExporter } from '@loopsight/otel';
import { SpanKind, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { frameworks, type TestApp } from '../../../test-support/apps.js';
import { spanExporter, tracerProvider } from './setup-tracing.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const apps: TestApp[] = [];
const stops: (() => Promise<void>)[] = [];
beforeEach(() => spanExporter.reset());
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
  for (const stop of stops.splice(0)) await stop();
});

const serverSpans = () => spanExporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER);
const named = (name: string) => spanExporter.getFinishedSpans().filter((s) => s.name === name);
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

async function waitFor<T>(read: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error('timed out');
    await sleep(20);
  }
}

describe.each(frameworks.map((f) => [f.name, f] as const))('%s with OTel HTTP instrumentation', (_name, framework) => {
  // A retry for the watchdog, not for the exporter: on a loaded machine a pause can land late, and a
  // late pause is rightly left unattributed.
  it('the server span carries the correlation id; the stall is a child span in the blocking request’s trace', { retry: 2 }, async () => {
    const app = await framework.start({ exporters: [otelExporter()], promises: false, onReport: () => {} });
    apps.push(app);
    const stalls: unknown[] = [];
    app.monitor.on('stall', (r) => stalls.push(r));
    await sleep(300); // the watchdog's worker comes up
    const id = `stall-${Math.random().toString(36).slice(2)}`;
    const res = await request(`${app.url}/block/350`, { headers: { 'x-request-id': id } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();

    const server = await waitFor(() => serverSpans().find((s) => s.attributes['loopsight.correlation_id'] === id));
    const stall = await waitFor(
      () => named('loopsight.stall').find((s) => s.spanContext().traceId === server.spanContext().traceId),
      10_000,
    ).catch((error: Error) => {
      // What the monitor reported instead, for the next reader of a failure.
      throw new Error(`${error.message}: no stall span in the request's trace; stall reports: ${JSON.stringify(stalls)}`);
    });
    expect(parentOf(stall)).toBe(server.spanContext().spanId);
    expect(stall.kind).toBe(SpanKind.INTERNAL);
    expect(stall.attributes).toMatchObject({
      'loopsight.correlation_id': id,
      'http.route': '/block/:ms',
      'loopsight.stall.stack_source': expect.stringMatching(/^(late-)?pause$/),
    });
    // A late pause (a starved machine) may have entered the frame above the blocker: its caller is the culprit then.
    if (stall.attributes['loopsight.stall.stack_source'] === 'pause') expect(stall.attributes['code.function.name']).toBe('blockTheLoop');
    expect(String(stall.attributes['code.stacktrace'])).toMatch(/ {4}at blockTheLoop \(file:\/\/.*test-support\/blockers\.ts:\d+:\d+\)/);
    // The stall's real start and end: inside the request, about 350 ms long.
    const ms = (t: [number, number]) => t[0] * 1e3 + t[1] / 1e6;
    const duration = ms(stall.endTime) - ms(stall.startTime);
    expect(duration).toBeGreaterThanOrEqual(250);
    expect(duration).toBeLessThan(1500);
    // Date.now() and OTel's hrtime clock can drift apart by a few ms.
    expect(ms(stall.startTime)).toBeGreaterThanOrEqual(ms(server.startTime) - 20);
    expect(ms(stall.startTime)).toBeLessThanOrEqual(ms(server.endTime));
  });

  it('no second server span: one per request, made by OTel’s instrumentation', async () => {
    const app = await framework.start({ exporters: [otelExporter()], onReport: () => {} });
    apps.push(app);
    await Promise.all(
      ['a', 'b', 'c'].map(async (id) => (await request(`${app.url}/users/1`, { headers: { 'x-request-id': `one-${id}` } })).body.dump()),
    );
    await waitFor(() => (serverSpans().length >= 3 ? true : undefined));
    expect(
      serverSpans()
        .map((s) => s.attributes['loopsight.correlation_id'])
        .sort(),
    ).toEqual(['one-a', 'one-b', 'one-c']);
    expect(spanExporter.getFinishedSpans()).toHaveLength(3);
  });
});

describe('promise reports', () => {
  it('an event on the span while it is open', async () => {
    const monitor = createMonitor({ exporters: [otelExporter()], onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    const tracer = tracerProvider.getTracer('test');
    await tracer.startActiveSpan('job span', async (span) => {
      await monitor.run({ correlationId: 'job-1', route: 'queue:orders' }, async () => {
        const scope = currentScope() as RequestScope;
        internals(monitor).report({
          type: 'promise',
          kind: 'floating',
          stack: [{ functionName: 'sendMail', url: 'file:///app/mail.js', line: 12, column: 3 }],
          request: scope,
          ageMs: 0,
        });
      });
      span.end();
    });
    const [job] = named('job span');
    expect(job?.attributes['loopsight.correlation_id']).toBe('job-1');
    expect(job?.events.map((e) => [e.name, e.attributes])).toEqual([
      [
        'loopsight.promise',
        {
          'loopsight.promise.kind': 'floating',
          'loopsight.promise.age_ms': 0,
          'loopsight.correlation_id': 'job-1',
          'code.stacktrace': '    at sendMail (file:///app/mail.js:12:3)',
          'code.function.name': 'sendMail',
          'code.file.path': 'file:///app/mail.js',
          'code.line.number': 12,
          'code.column.number': 3,
        },
      ],
    ]);
  });

  it('after the request ended (a leaked promise): a child span from its creation to the report', async () => {
    const [framework] = frameworks;
    if (!framework) throw new Error('no framework');
    const app = await framework.start({ exporters: [otelExporter()], promises: false, onReport: () => {} });
    apps.push(app);
    let scope: RequestScope | undefined;
    app.monitor.on('request', (record) => {
      if (record.correlationId === 'leaky') scope = currentScope();
    });
    await (await request(`${app.url}/users/7`, { headers: { 'x-request-id': 'leaky' } })).body.dump();
    const server = await waitFor(() => serverSpans().find((s) => s.attributes['loopsight.correlation_id'] === 'leaky'));
    await waitFor(() => scope);
    internals(app.monitor).report({ type: 'promise', kind: 'leaked', stack: [], request: scope as RequestScope, ageMs: 5000 });
    const [leak] = named('loopsight.promise');
    expect(leak?.spanContext().traceId).toBe(server.spanContext().traceId);
    expect(leak && parentOf(leak)).toBe(server.spanContext().spanId);
    expect(leak?.attributes).toMatchObject({
      'loopsight.promise.kind': 'leaked',
      'http.route': '/users/:id',
      'loopsight.correlation_id': 'leaky',
    });
    expect(leak?.duration[0]).toBe(5);
  });
});

describe('bounds', () => {
  it('remembers the spans of the last maxTrackedSpans requests only', async () => {
    const monitor = createMonitor({ exporters: [otelExporter({ maxTrackedSpans: 3 })], onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    const tracer = tracerProvider.getTracer('test');
    const scopes: RequestScope[] = [];
    for (let i = 0; i < 5; i++) {
      tracer.startActiveSpan(`job ${i}`, (span) => {
        monitor.run({ correlationId: `bounded-${i}` }, () => scopes.push(currentScope() as RequestScope));
        span.end();
      });
    }
    for (const scope of scopes) {
      internals(monitor).report({
        type: 'stall',
        durationMs: 120,
        at: Date.now() - 120,
        stack: [],
        stackSource: 'pause',
        inflight: 1,
        request: scope,
      });
    }
    expect(named('loopsight.stall').map((s) => s.attributes['loopsight.correlation_id'])).toEqual(['bounded-2', 'bounded-3', 'bounded-4']);
  });
});

describe('without a span', () => {
  it('a job outside any span: nothing is invented', async () => {
    const monitor = createMonitor({ exporters: [otelExporter()], onReport: () => {} });
    monitor.start();
    stops.push(() => monitor.stop());
    expect(trace.getActiveSpan()).toBeUndefined();
    monitor.run({ correlationId: 'lonely' }, () => {
      internals(monitor).report({
        type: 'stall',
        durationMs: 200,
        at: Date.now() - 200,
        stack: [],
        stackSource: 'pause',
        inflight: 1,
        request: currentScope() as RequestScope,
      });
    });
    expect(spanExporter.getFinishedSpans()).toHaveLength(0);
  });
});
