// node --import ./servers/lib/otel-setup.mjs servers/express.mjs otel: OpenTelemetry's http and
// express instrumentations, registered before the app loads express or http, with spans batched to
// an exporter that drops them (no network, no growing memory). The server files are ESM, so the
// import-in-the-middle hook is registered too: without it, `import express from 'express'` is not
// patched and only the http span would be recorded.
import { register } from 'node:module';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { ExpressInstrumentation } from '@opentelemetry/instrumentation-express';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);

/** Counts what it is given and drops it: the cost of recording spans, not of shipping them. */
export const exported = { spans: 0 };
const dropping = {
  export(spans, done) {
    exported.spans += spans.length;
    // BENCH_OTEL_DEBUG=1: which spans were recorded (the check that express is instrumented).
    if (process.env.BENCH_OTEL_DEBUG) console.error(spans.map((s) => s.name).join(', '));
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
  forceFlush: () => Promise.resolve(),
};

const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropping)] });
provider.register();
registerInstrumentations({ instrumentations: [new HttpInstrumentation(), new ExpressInstrumentation()] });
globalThis.__benchOtel = { exported, provider };
