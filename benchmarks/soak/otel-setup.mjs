// Loaded with --import before the app: OpenTelemetry's HTTP instrumentation and a tracer provider
// whose spans go to an in-memory exporter, so loopsight's stall spans and promise events have a
// server span to hang from, as in a traced service. The server empties the exporter at every sample.
// The import-in-the-middle hook makes `import http from 'node:http'` patched too.
import { register } from 'node:module';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);

const spanExporter = new InMemorySpanExporter();
const tracerProvider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
tracerProvider.register();
registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });
globalThis.__soakOtel = { spanExporter, tracerProvider };
