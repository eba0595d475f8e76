// An Express service with loopsight and OpenTelemetry. Run it with `npm start`, and point
// OTEL_EXPORTER_OTLP_ENDPOINT at a collector (Jaeger, Tempo, the OTel Collector): every request's
// server span carries loopsight.correlation_id, and GET /reports/daily, which blocks the event loop
// for 300 ms, shows a `loopsight.stall` span with the blocking stack inside its trace.
import { loopsight } from '@loopsight/express';
import { otelExporter } from '@loopsight/otel';
import express from 'express';

/** Blocks the event loop: the kind of handler loopsight exists to find. */
function buildDailyReport(ms) {
  const end = performance.now() + ms;
  let rows = 0;
  while (performance.now() < end) rows++;
  return rows;
}

const app = express();
// The NodeSDK registered the global providers in instrumentation.js; otelExporter() uses them.
app.use(loopsight({ exporters: [otelExporter()] }));
app.get('/users/:id', (req, res) => res.json({ user: req.params.id }));
app.get('/reports/daily', (_req, res) => res.json({ rows: buildDailyReport(Number(process.env.BLOCK_MS ?? 300)) }));

const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`listening on http://${server.address().address}:${server.address().port}`);
});
