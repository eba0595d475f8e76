import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { metricsHandler, prometheusExporter } from '@loopsight/prometheus';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { slowClient } from '../../../test-support/backpressure.js';
import { type StreamingApp, streamingApps } from '../../../test-support/backpressure-suite.js';
import { type PrometheusServer, startPrometheus } from '../../../test-support/prometheus-server.js';
import { until } from '../../../test-support/until.js';

// A real Prometheus scrapes an Express service whose streaming route ignores backpressure once and
// honours it once; the assertions are PromQL answers from its HTTP API, the alert rules users are
// given (examples/prometheus/alerts.yml) and the Grafana dashboard's queries.
const ALERTS = fileURLToPath(new URL('../../../examples/prometheus/alerts.yml', import.meta.url));
const DASHBOARD = new URL('../../../docs/grafana-dashboard.json', import.meta.url);
let app: StreamingApp;
let metricsServer: Server;
let prometheus: PrometheusServer;
let reports = 0;

beforeAll(async () => {
  const registry = new Registry();
  app = await streamingApps.express({
    loopLag: false,
    promises: false,
    exporters: [prometheusExporter({ registry })],
    onReport: (r) => {
      if (r.type === 'backpressure') reports++;
    },
  });
  metricsServer = createServer(metricsHandler(registry));
  await new Promise<void>((resolve) => metricsServer.listen(0, '127.0.0.1', resolve));
  prometheus = await startPrometheus([`127.0.0.1:${(metricsServer.address() as AddressInfo).port}`], {
    scrapeInterval: '1s',
    ruleFiles: [ALERTS],
  });
}, 60_000);

afterAll(async () => {
  await prometheus?.close();
  await new Promise((resolve) => metricsServer?.close(resolve));
  await app?.close();
});

it('Prometheus finds the backpressure counter, the drain-wait histogram and the buffered bytes', async () => {
  const ignoring = await slowClient(app.url, '/stream/ignore');
  // While the slow client holds the ignoring response, its buffered bytes are in the gauge.
  expect(await until(() => reports === 1, 10_000)).toBe(true);
  const buffered = await prometheus.waitFor('loopsight_backpressure_buffered_bytes', (r) => Number(r[0]?.value[1]) > 1_048_576, 15_000);
  expect(buffered).toHaveLength(1);
  ignoring.destroy();
  const awaiting = await slowClient(app.url, '/stream/await');
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await awaiting.finish();

  const counted = await prometheus.waitFor('loopsight_backpressure_total{kind="ignored"}', (r) => Number(r[0]?.value[1]) >= 1, 15_000);
  expect(counted[0]?.metric).toMatchObject({ route: '/stream/:mode', job: 'loopsight-test' });
  const waits = await prometheus.waitFor(
    'loopsight_drain_wait_seconds_count{route="/stream/:mode"}',
    (r) => Number(r[0]?.value[1]) > 5,
    15_000,
  );
  expect(waits).toHaveLength(1);
  const p90 = await prometheus.query('histogram_quantile(0.9, sum(loopsight_drain_wait_seconds_bucket) by (le))');
  expect(Number.isFinite(Number(p90[0]?.value[1]))).toBe(true);
}, 60_000);

it('the example alert rules load and evaluate; BackpressureIgnored fires for the route', async () => {
  const deadline = Date.now() + 15_000;
  let rules = await prometheus.rules();
  while (Date.now() < deadline && !rules.some((r) => r.name === 'BackpressureIgnored' && r.state === 'firing')) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    rules = await prometheus.rules();
  }
  expect(rules.length).toBeGreaterThanOrEqual(9);
  for (const rule of rules) expect(rule, JSON.stringify(rule)).toMatchObject({ health: 'ok' });
  const ignored = rules.find((r) => r.name === 'BackpressureIgnored');
  expect(ignored?.state, JSON.stringify(ignored)).toBe('firing');
  expect(ignored?.alerts?.[0]?.labels).toMatchObject({ alertname: 'BackpressureIgnored', route: '/stream/:mode' });
}, 30_000);

it("every query of the Grafana dashboard runs; the backpressure panels' have data", async () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  // Grafana's variables, as it substitutes them for one job over the last minute.
  const promqlOf = (expr: string) =>
    expr
      .replaceAll('$job', 'loopsight-test')
      .replaceAll('$instance', '.*')
      .replaceAll('$__rate_interval', '1m')
      .replaceAll('$__range', '5m');
  const titles: string[] = [];
  for (const panel of dashboard.panels) {
    titles.push(panel.title);
    for (const { expr } of panel.targets) await prometheus.query(promqlOf(expr));
  }
  expect(titles).toContain('Outbound queue wait p99 by origin');
  // A rate needs two scrapes of a series: the drain waits' came with the last response above.
  for (const title of ['Backpressure reports by kind and route', 'Drain wait p90 by route']) {
    const expr = dashboard.panels.find((p) => p.title === title)?.targets[0]?.expr ?? '';
    expect(await prometheus.waitFor(promqlOf(expr), (r) => r.length > 0, 15_000)).not.toEqual([]);
  }
}, 30_000);
