import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

// examples/pipeline in its short mode (what CI runs), against the packages' builds and a private
// redis-server: the blocking job's stall must name the job and the id of the request that enqueued
// it, the floating promise its job and id, and the payments service must have seen the request's id.
const example = fileURLToPath(new URL('../../examples/pipeline/', import.meta.url));

it('the pipeline example prints the blocking job with its enqueuing request id, and the floating promise (2 runs)', {
  timeout: 120_000,
}, async () => {
  for (const run of [1, 2]) {
    const started = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, ['index.js', '--short'], {
      cwd: example,
      timeout: 40_000,
      env: { ...process.env, REDIS_URL: '' },
    });
    const section = (title: string) => stdout.split(`\n${title}`)[1]?.split('\n\n')[0] ?? '';
    const stalls = section('Stall reports');
    expect(stalls, `run ${run}:\n${stdout}`).toMatch(/\d+ ms {2}JOB render-invoice {2}id order-1001 {2}\(stack: (pause|late-pause)/);
    expect(stalls, `run ${run}:\n${stdout}`).toMatch(/culprit renderInvoicePdf \(index\.js:\d+:\d+\)/);
    const promises = section('Promise reports');
    expect(promises, `run ${run}:\n${stdout}`).toMatch(/floating {2}JOB welcome-email {2}id signup-77/);
    expect(promises, `run ${run}:\n${stdout}`).toMatch(/culprit sendEmail/);
    expect(stdout, `run ${run}:\n${stdout}`).toMatch(/The payments service saw x-request-id: order-1001/);
    expect(stdout, `run ${run}:\n${stdout}`).toMatch(/Jobs run \((\d+) of \1 /);
    expect(stdout).toMatch(/at most [12] writes at a time/);
    expect(stdout).toContain('loopsight_jobs_total{job="refund",outcome="failed"} 1');
    expect(Date.now() - started, 'the short mode finishes within 20 s').toBeLessThan(20_000);
  }
});
