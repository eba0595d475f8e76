import { createMonitor, type Monitor } from '@loopsight/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { blockTheLoop } from '../../../test-support/blockers.js';
import { hub } from '../src/hub.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const quiet = { onReport: () => {}, promises: false } as const;
const monitors: Monitor[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(monitors.splice(0).map((m) => m.stop()));
});

function start(options: Parameters<typeof createMonitor>[0]): Monitor {
  const monitor = createMonitor(options);
  monitors.push(monitor);
  monitor.start();
  return monitor;
}

/** setInterval calls at `ms`: a delay recorder's timer is the only one at 10 ms or 20 ms. */
function intervalsAt(spy: { mock: { calls: unknown[][] } }, ms: number): number {
  return spy.mock.calls.filter((call) => call[1] === ms).length;
}

// One file per process (vitest forks): the hub starts empty here.
describe('one loop delay recorder per process', () => {
  it('is shared by the sampler and the overload guard: one 10 ms timer, and both see a block', async () => {
    const spy = vi.spyOn(globalThis, 'setInterval');
    const monitor = start({ ...quiet, loopLag: { windowMs: 200 }, shed: { maxEventLoopDelayMs: 50, sampleIntervalMs: 100 } });
    expect(intervalsAt(spy, 10)).toBe(1);
    expect(hub().recordersRunning).toBe(1);

    await sleep(250);
    let overloaded = false;
    const poll = setInterval(() => {
      overloaded ||= monitor.health().status === 'overloaded';
    }, 5);
    blockTheLoop(150);
    await sleep(450);
    clearInterval(poll);
    expect(overloaded).toBe(true);
    expect(monitor.loopDelayHistogram().sumMs).toBeGreaterThan(100);

    // A second monitor with the same resolution adds no timer.
    start({ ...quiet, shed: { maxEventLoopUtilization: 0.99 } });
    expect(intervalsAt(spy, 10)).toBe(1);
    expect(hub().recordersRunning).toBe(1);

    await Promise.all(monitors.splice(0).map((m) => m.stop()));
    expect(hub().recordersRunning).toBe(0);
  });

  it('runs one more only when loopLag.resolutionMs is not the guard’s 10 ms', async () => {
    const spy = vi.spyOn(globalThis, 'setInterval');
    start({ ...quiet, loopLag: { resolutionMs: 20 }, shed: { maxEventLoopDelayMs: 200 } });
    expect(intervalsAt(spy, 20)).toBe(1);
    expect(intervalsAt(spy, 10)).toBe(1);
    expect(hub().recordersRunning).toBe(2);
  });

  it('gives the guard alone, with loopLag off, one recorder', () => {
    start({ ...quiet, loopLag: false, shed: { maxEventLoopDelayMs: 200 } });
    expect(hub().recordersRunning).toBe(1);
  });
});
