// A tracer provider, but no HTTP instrumentation: there is no server span, and loopsight makes none.
import { otelExporter } from '@loopsight/otel';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { request } from 'undici';
import { afterAll, expect, it } from 'vitest';
import { frameworks, type TestApp } from '../../../test-support/apps.js';

const spanExporter = new InMemorySpanExporter();
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] }));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let app: TestApp | undefined;
afterAll(() => app?.close());

it('without OTel’s HTTP instrumentation no span is invented, and the stall is still counted', { retry: 2 }, async () => {
  const framework = frameworks.find((f) => f.name === 'koa 3');
  if (!framework) throw new Error('koa 3 app missing');
  await app?.close();
  app = await framework.start({ exporters: [otelExporter()], promises: false, onReport: () => {} });
  const stalls: string[] = [];
  app.monitor.on('stall', (r) => stalls.push(r.request?.route ?? '?'));
  await sleep(300);
  const res = await request(`${app.url}/block/350`);
  expect(res.statusCode).toBe(200);
  await res.body.dump();
  await sleep(300);
  expect(stalls).toEqual(['/block/:ms']);
  expect(spanExporter.getFinishedSpans()).toEqual([]);
});
