import { createMonitor } from '@loopsight/core';
import { prometheusExporter } from '@loopsight/prometheus';
import { Registry } from 'prom-client';
import { expect, it } from 'vitest';

it('job metrics are registered with the first job, by job name and outcome, and bounded by maxRoutes', async () => {
  const registry = new Registry();
  const exporter = prometheusExporter({ registry, maxRoutes: 2 });
  const monitor = createMonitor({ loopLag: false, promises: false, exporters: [exporter] });
  monitor.start();
  try {
    await monitor.run({ method: 'GET', route: '/users/:id' }, async () => {});
    // A service without jobs has no job series.
    expect(exporter.metricNames).not.toContain('loopsight_jobs_total');
    for (const name of ['charge', 'charge', 'resize', 'mail', 'export']) await monitor.run({ method: 'JOB', route: name }, async () => {});
    await expect(monitor.run({ method: 'JOB', route: 'resize' }, () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(exporter.metricNames).toContain('loopsight_jobs_total');
    const text = await registry.metrics();
    const lines = text.split('\n').filter((l) => l.startsWith('loopsight_jobs_total{'));
    expect(lines.sort()).toEqual([
      'loopsight_jobs_total{job="__other__",outcome="completed"} 2',
      'loopsight_jobs_total{job="charge",outcome="completed"} 2',
      'loopsight_jobs_total{job="resize",outcome="completed"} 1',
      'loopsight_jobs_total{job="resize",outcome="failed"} 1',
    ]);
    expect(text).toContain('loopsight_job_duration_seconds_count{job="charge"} 2');
    expect(text).toContain('loopsight_job_duration_seconds_bucket{le="300",job="charge"} 2');
  } finally {
    await monitor.stop();
  }
  expect(await registry.metrics()).not.toContain('loopsight_jobs_total');
});
