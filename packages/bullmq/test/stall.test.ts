import { setTimeout as sleep } from 'node:timers/promises';
import { loopsight, propagate } from '@loopsight/bullmq';
import { withCorrelationId } from '@loopsight/context';
import { createMonitor, type StallReport } from '@loopsight/core';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
// @ts-expect-error: a JavaScript module without types
import { startRedis } from '../../../examples/start-redis.mjs';
import { blockTheLoop } from '../../../test-support/blockers.js';
import { until } from '../../../test-support/until.js';

let redis: { host: string; port: number; close(): Promise<void> };
let queue: Queue;
let worker: Worker;
const reports: StallReport[] = [];
const monitor = createMonitor({ promises: false, onReport: () => {} });

beforeAll(async () => {
  redis = await startRedis();
  const connection = { host: redis.host, port: redis.port };
  queue = propagate(new Queue('images', { connection }));
  worker = new Worker(
    'images',
    async (job) => {
      await sleep(5);
      if (job.name === 'resize') blockTheLoop(300);
      return 'done';
    },
    { connection, concurrency: 2 },
  );
  loopsight(worker, { monitor });
  monitor.on('stall', (r) => reports.push(r));
  // Let the watchdog's thread come up (slow on a loaded machine).
  await sleep(1000);
});
afterAll(async () => {
  await worker.close();
  await queue.close();
  await monitor.stop();
  await redis.close();
});

it('a job that blocks the loop 300 ms is one stall report, with the job name, the enqueuing id and the blocking function', async () => {
  await withCorrelationId('upload-42', () => queue.add('resize', { file: 'a.png' }));
  await withCorrelationId('upload-43', () => queue.add('thumbnail', { file: 'b.png' }));
  const ours = () =>
    reports.filter((r) => r.request?.correlationId === 'upload-42' || r.stack.some((f) => f.functionName === 'blockTheLoop'));
  expect(await until(() => ours().length > 0, 10_000), JSON.stringify(reports)).toBe(true);
  await sleep(300);
  expect(ours(), JSON.stringify(reports)).toHaveLength(1);
  const [report] = ours() as [StallReport];
  // The watchdog times a stall from the heartbeat before it: the block less up to a few ticks.
  expect(report.durationMs).toBeGreaterThanOrEqual(240);
  expect(['pause', 'late-pause']).toContain(report.stackSource);
  expect(report.culprit, JSON.stringify(report.stack)).toMatchObject({ functionName: 'blockTheLoop' });
  expect(report.request).toMatchObject({ correlationId: 'upload-42', method: 'JOB', route: 'resize' });
});
