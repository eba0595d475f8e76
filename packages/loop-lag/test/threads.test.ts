// Worker threads under the stall watchdog alone: fixtures/threads.mjs runs a watchdog on the main
// thread and one in a worker thread (the built package), and prints what each reports.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { WatchdogStallReport } from '@loopsight/loop-lag';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/threads.mjs', import.meta.url));

interface Line {
  event: string;
  thread: number;
  report?: WatchdogStallReport<{ correlationId: string }>;
  status?: { mode: string; stacks: boolean; stalls: number };
  code?: number;
  what?: string;
  at?: number;
}

/**
 * The worker's reports of its blocks: stalls that began around a block's start. A loaded machine
 * adds stalls of its own (on Node 24+ a worker may stall at its start, loading MessageEvent; its
 * loop may lag just before a block or after it): those are not the blocks.
 */
function blockReports(lines: Line[]): Line[] {
  const blocks = lines.filter((l) => l.event === 'block').map((l) => l.at ?? 0);
  // A report of a block is a stall that began by the block's start (give or take the clocks) and
  // lasted into it: one that began 555 ms before it had been held paused first (a loaded machine),
  // and a stall of its own start on a loaded machine ends before the block begins.
  return lines.filter((l) => {
    const at = l.report?.at ?? 0;
    const end = at + (l.report?.durationMs ?? 0);
    return l.event === 'report' && l.thread !== 0 && blocks.some((b) => at <= b + 100 && end >= b);
  });
}

/** The last line but the main thread's own stall reports (a loaded machine may add one at its exit). */
function lastOfWorker(lines: Line[]): Line | undefined {
  return lines.filter((l) => !(l.event === 'report' && l.thread === 0)).at(-1);
}

/** Runs the fixture to its own end (a 10 s limit: a process that does not exit by itself fails). */
async function run(config: object): Promise<Line[]> {
  const { stdout } = await promisify(execFile)(process.execPath, [fixture, JSON.stringify(config)], { timeout: 10_000 });
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Line);
}

describe('worker threads', () => {
  // Retried: on a loaded machine a pause may land late (`late-pause`, no job), as on the main thread.
  it("a worker that blocks for 300 ms is reported in the worker with its thread id, its stack and its job, through the main thread's watchdog thread", {
    retry: 2,
  }, async () => {
    const lines = await run({});
    // The worker's: a loaded machine may add a stall of the main thread's.
    const reports = blockReports(lines);
    expect(reports, JSON.stringify(lines)).toHaveLength(1);
    const [{ report, thread }] = reports as [Line & { report: WatchdogStallReport<{ correlationId: string }> }];
    expect(report.thread?.id).toBe(thread);
    expect(thread).not.toBe(0);
    expect(report.durationMs).toBeGreaterThanOrEqual(250);
    expect(report.stackSource).toBe('pause');
    expect(report.stack.some((f) => f.functionName === 'blockTheWorker')).toBe(true);
    expect(report.request).toEqual({ correlationId: 'job-7' });
    expect(lines.find((l) => l.event === 'worker' && l.status)?.status).toMatchObject({ mode: 'worker', stacks: true });
    expect(lines.find((l) => l.event === 'worker-exit')?.code).toBe(0);
  });

  // Retried as the one above. Up to a second went by before the watchdog thread looked at a
  // worker again after a stall: the second block went unseen and was reported without a stack.
  it('two blocks of a worker 300 ms apart: each reported with its stack and its job', async () => {
    const lines = await run({ againAfterMs: 300 });
    const reports = blockReports(lines);
    expect(reports, JSON.stringify(lines)).toHaveLength(2);
    // Seen by the watchdog thread, both: paused and read (a loaded machine may label a pause late,
    // and a late pause's request is not trusted), where the second used to be 'none'.
    for (const { report } of reports) {
      expect(report?.stackSource, JSON.stringify(report)).toMatch(/^(pause|late-pause)$/);
      expect(report?.stack.length).toBeGreaterThan(0);
    }
    const prompt = reports.filter((l) => l.report?.stackSource === 'pause');
    for (const { report } of prompt) expect(report?.stack.some((f) => f.functionName === 'blockTheWorker')).toBe(true);
    expect(prompt.map((l) => l.report?.request)).toEqual(
      reports.flatMap((l, i) => (l.report?.stackSource === 'pause' ? [{ correlationId: `job-${7 + i}` }] : [])),
    );
  });

  it('without a watchdog on the main thread, the worker times its own stalls: reported once, without a stack', async () => {
    const lines = await run({ main: false });
    const reports = blockReports(lines);
    expect(reports, JSON.stringify(lines)).toHaveLength(1);
    expect(reports[0]?.report).toMatchObject({ stackSource: 'none', stackSkipped: 'unavailable', stack: [] });
    expect(reports[0]?.report?.durationMs).toBeGreaterThanOrEqual(250);
    expect(reports[0]?.report?.thread?.id).toBe(reports[0]?.thread);
    expect(lines.find((l) => l.event === 'worker' && l.status)?.status).toMatchObject({ mode: 'main-thread', stacks: false });
  });

  it("the main thread's watchdog stopped while the worker is held paused (its resume made to hang): the worker is let go, finishes and exits", async () => {
    const lines = await run({ faults: [{ step: 'resume', kind: 'hang', times: 10 }], stopMainAfterMs: 150, blockMs: 800 });
    expect(
      lines.some((l) => l.event === 'main-stopped'),
      JSON.stringify(lines),
    ).toBe(true);
    // Reported once, by the worker itself, timed: the watchdog thread that held it is gone. (Its
    // status counts a stall of its start too on a loaded machine: the reports are what a user reads.)
    const reports = blockReports(lines);
    expect(reports, JSON.stringify(lines)).toHaveLength(1);
    expect(reports[0]?.report).toMatchObject({ stackSource: 'none', stack: [] });
    expect(reports[0]?.report?.durationMs).toBeGreaterThanOrEqual(700);
    // And it knows it times its stalls itself from then on.
    expect(lines.find((l) => l.event === 'worker' && l.status)?.status).toMatchObject({ mode: 'main-thread', stacks: false });
    expect(lastOfWorker(lines)).toMatchObject({ event: 'worker-exit', code: 0 });
  });

  it('a worker whose watchdog was stopped exits, and so does the process, with nothing reported after', async () => {
    const lines = await run({ stop: true });
    expect(
      lines.filter((l) => l.event === 'error'),
      JSON.stringify(lines),
    ).toEqual([]);
    expect(lastOfWorker(lines)).toMatchObject({ event: 'worker-exit', code: 0 });
    const stopped = lines.findIndex((l) => l.event === 'worker' && l.status);
    expect(stopped).toBeGreaterThan(-1);
    expect(lines.slice(stopped).filter((l) => l.event === 'report' && l.thread !== 0)).toEqual([]);
  });
});
