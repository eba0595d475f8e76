// The parts of loopsight that packaging breaks first, as installed from the tarballs: the stall
// watchdog (a worker thread and the inspector) attributing a blocked request, and the exporters
// finding the app's own prom-client and @opentelemetry/api (peer dependencies, not copies).
import { loopsight } from '@loopsight/express';
import { otelExporter } from '@loopsight/otel';
import { prometheusExporter } from '@loopsight/prometheus';
import express from 'express';
import { register } from 'prom-client';
import { listen } from './probe.cjs';

function busyWait(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

const stalls = [];
const app = express();
const ls = loopsight({
  onReport: (report) => report.type === 'stall' && stalls.push(report),
  exporters: [prometheusExporter(), otelExporter()],
});
app.use(ls);
app.get('/reports/:day', (_req, res) => {
  // Long enough that on a loaded machine the stack is taken while the handler still runs: a late
  // one (the block over) names no request (Node 22, a CI run at a load average of 14).
  busyWait(1_000);
  res.json({ ok: true });
});
const served = await listen(app, ls.monitor);
await fetch(`${served.url}/reports/monday`, { headers: { 'x-request-id': 'esm-stall-1' } });
// The watchdog reports from its thread once the loop is free again; give it a moment. Other stalls
// (fetch loading undici on a busy machine) belong to no request and are not the one looked for.
const ours = () => stalls.find((report) => report.request?.correlationId === 'esm-stall-1');
for (let waited = 0; !ours() && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
const metrics = await register.metrics();
await served.close();

const stall = ours();
process.stdout.write(
  JSON.stringify({
    stall: stall && {
      durationMs: stall.durationMs,
      request: stall.request,
      stackSource: stall.stackSource,
      frames: stall.stack.length,
      capture: stall.capture,
    },
    metricTypes: metrics
      .split('\n')
      .filter((line) => line.startsWith('# TYPE loopsight_'))
      .map((line) => line.slice('# TYPE '.length)),
  }),
);
