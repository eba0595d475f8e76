// The heartbeat rides on a delay recorder's tick when one runs often enough (ticks.ts): one timer's
// wake-ups instead of two. These check the hand-over both ways, and that a stall is still timed from
// the interval the thread really beats at.
import { afterEach, describe, expect, it } from 'vitest';
import { createLoopDelayRecorder, createStallWatchdog, type WatchdogStallReport } from '../../src/index.js';
import { drive, followTicks, stopDriving, tick } from '../../src/ticks.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const block = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A follower that records the interval of each call. */
function follow(maxMs: number) {
  const calls: number[] = [];
  const unfollow = followTicks(maxMs, (everyMs) => calls.push(everyMs));
  cleanups.push(unfollow);
  return { calls, unfollow };
}

describe('ticks', () => {
  it('beats on a timer of its own at its longest interval while no driver fits', async () => {
    const { calls } = follow(20);
    const slow = drive(50);
    cleanups.push(() => stopDriving(slow));
    await sleep(200);
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(new Set(calls)).toEqual(new Set([20]));
  });

  it('moves onto a driver that ticks often enough, and stops its own timer', async () => {
    const { calls } = follow(25);
    const driver = drive(10);
    cleanups.push(() => stopDriving(driver));
    calls.length = 0;
    await sleep(120);
    // Only the driver's ticks call it now, and none came.
    expect(calls).toEqual([]);
    tick(driver);
    tick(driver);
    expect(calls).toEqual([10, 10]);
  });

  it('takes the slowest driver that fits: the fewest beats', () => {
    const { calls } = follow(25);
    const fast = drive(5);
    const fit = drive(20);
    const slow = drive(30);
    cleanups.push(() => [fast, fit, slow].forEach(stopDriving));
    tick(fast);
    tick(slow);
    tick(fit);
    expect(calls).toEqual([20]);
  });

  it('goes back to a timer of its own when its driver stops, and to nothing once unfollowed', async () => {
    const { calls, unfollow } = follow(15);
    const driver = drive(10);
    stopDriving(driver);
    calls.length = 0;
    tick(driver);
    expect(calls).toEqual([]);
    await sleep(150);
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(new Set(calls)).toEqual(new Set([15]));
    unfollow();
    const seen = calls.length;
    await sleep(60);
    expect(calls.length).toBe(seen);
  });

  it('a delay recorder drives only while it has readers', async () => {
    const { calls } = follow(25);
    const reader = createLoopDelayRecorder(10).open();
    calls.length = 0;
    await sleep(150);
    reader.close();
    expect(calls.length).toBeGreaterThanOrEqual(5);
    expect(new Set(calls)).toEqual(new Set([10]));
    calls.length = 0;
    await sleep(150);
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(new Set(calls)).toEqual(new Set([25]));
  });
});

describe('a stall timed while the heartbeat rides on a 10 ms delay recorder', () => {
  // The gap between the beats around a block of B ms is at least B; less the interval really beaten
  // at (10 ms, not the heartbeat's own 25 ms), a stall lasts at least B − 10.
  for (const mode of ['watchdog thread', 'main thread (no watchdog thread)'] as const) {
    it(`is at least the block less 10 ms: ${mode}`, async () => {
      const reader = createLoopDelayRecorder(10).open();
      cleanups.push(() => reader.close());
      const reports: WatchdogStallReport<object>[] = [];
      const watchdog = createStallWatchdog({
        thresholdMs: 100,
        captureStacks: false,
        getScope: () => undefined,
        inflight: () => 0,
        onStall: (r) => reports.push(r),
        onError: () => {},
        // @ts-expect-error internal: a watchdog thread that dies at once, so the main thread times stalls
        ...(mode === 'watchdog thread' ? {} : { workerSource: "throw new Error('no thread')" }),
      });
      watchdog.start();
      cleanups.push(() => watchdog.stop());
      // The thread starts (or fails to) in its own time: seconds on a loaded machine.
      const wanted = mode === 'watchdog thread' ? 'worker' : 'main-thread';
      for (let i = 0; i < 200 && watchdog.status().mode !== wanted; i++) await sleep(50);
      expect(watchdog.status().mode).toBe(wanted);
      await sleep(100);
      block(400);
      for (let i = 0; i < 40 && reports.length === 0; i++) await sleep(50);
      const stall = reports.find((r) => r.durationMs > 200);
      expect(stall, JSON.stringify(reports)).toBeDefined();
      expect(stall?.durationMs).toBeGreaterThanOrEqual(389);
    });
  }
});
