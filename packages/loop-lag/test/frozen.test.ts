import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { WatchdogStallReport } from '@loopsight/loop-lag';
import { describe, expect, it } from 'vitest';
import { runNode } from '../../../test-support/child.js';

// A whole process stood still (a container's CPU quota spent, SIGSTOP, a VM descheduled): the
// watchdog thread stood still with it, and a pause asked on waking would land in whatever the main
// thread ran first after the thaw. The fixture runs the built package in a child the test freezes.
const fixture = fileURLToPath(new URL('./fixtures/frozen.mjs', import.meta.url));

interface Frozen {
  reports: WatchdogStallReport<never>[];
  freezes: { start: number; end: number }[];
  block: { start: number; end: number };
  all: string;
}

/** Freezes the fixture `times` times for `freezeMs`, a few hundred ms apart, while its loop idles. */
async function freezeWhileIdle(times: number, freezeMs: number): Promise<Frozen> {
  const freezes: Frozen['freezes'] = [];
  let out = '';
  let started = false;
  const { code, events, stdout, stderr } = await runNode([fixture], {
    timeoutMs: 30_000,
    onSpawn: (child) => {
      child.stdout.on('data', async (d) => {
        out += d;
        if (started || !out.includes('"event":"idle"')) return;
        started = true;
        for (let i = 0; i < times; i++) {
          await sleep(300);
          const start = Date.now();
          child.kill('SIGSTOP');
          await sleep(freezeMs);
          freezes.push({ start, end: Date.now() });
          child.kill('SIGCONT');
        }
        await sleep(20);
        child.kill('SIGUSR2');
      });
    },
  });
  const all = `${stdout}\n${stderr}`;
  const result = events.find((e) => e.event === 'result') as { block: Frozen['block'] } | undefined;
  if (code !== 0 || !result || freezes.length !== times) throw new Error(`the fixture failed (${code}): ${all}`);
  const reports = events.filter((e) => e.event === 'report').map((e) => e.report as WatchdogStallReport<never>);
  return { reports, freezes, block: result.block, all };
}

/** The report of the stall that spans `window`'s middle (a heartbeat of slack at its end). */
const spanning = (reports: WatchdogStallReport<never>[], window: { start: number; end: number }) => {
  const middle = (window.start + window.end) / 2;
  return reports.filter((r) => r.at <= middle && middle <= r.at + r.durationMs + 50);
};

describe('a process frozen while its loop idles', () => {
  it('is one stall without a stack, never the stack of what ran first after the thaw; the block after it has its own', async () => {
    // Which thread runs first after a thaw is the scheduler's choice; three freezes make a pause
    // asked on waking all but certain to show (before the watchdog discounted frozen time, 6 of
    // 10 single freezes gave Node's timer processing as the stall's stack).
    const { reports, freezes, block, all } = await freezeWhileIdle(3, 400);
    for (const freeze of freezes) {
      const frozen = spanning(reports, freeze);
      expect(frozen, all).toHaveLength(1);
      // Timed from the main thread's beats: the loop did run that late.
      expect(frozen[0]?.durationMs, all).toBeGreaterThanOrEqual(300);
      expect(frozen[0]?.stackSource, all).toBe('none');
      expect(frozen[0]?.stack, all).toEqual([]);
    }
    const blocked = spanning(reports, block);
    expect(blocked, all).toHaveLength(1);
    expect(
      blocked[0]?.stack.map((f) => f.functionName),
      all,
    ).toContain('blockAfterThaw');
  });
});
