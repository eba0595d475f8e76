// An Express service with loopsight's Prometheus metrics beside prom-client's default ones.
// Run it with `npm start`, then `prometheus --config.file=prometheus.yml` in this directory.
import { loopsight } from '@loopsight/express';
import { metricsHandler, prometheusExporter } from '@loopsight/prometheus';
import express from 'express';
import { collectDefaultMetrics, register } from 'prom-client';

/** Blocks the event loop: the kind of handler loopsight exists to find. */
function buildDailyReport(ms) {
  const end = performance.now() + ms;
  let rows = 0;
  while (performance.now() < end) rows++;
  return rows;
}

collectDefaultMetrics();
const app = express();
app.use(loopsight({ exporters: [prometheusExporter()] }));
app.get('/metrics', metricsHandler(register));
app.get('/users/:id', (req, res) => res.json({ user: req.params.id }));
app.get('/reports/daily', (_req, res) => res.json({ rows: buildDailyReport(Number(process.env.BLOCK_MS ?? 300)) }));

const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`listening on http://${server.address().address}:${server.address().port}`);
});
