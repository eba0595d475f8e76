import { createLoopDelayRecorder } from '@loopsight/loop-lag';
import { afterEach, describe, expect, it } from 'vitest';
import { busyWait } from '../../../test-support/hops.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const recorders: ReturnType<typeof createLoopDelayRecorder>[] = [];
afterEach(() => {
  for (const r of recorders.splice(0)) r.stop();
});

describe('createLoopDelayRecorder', () => {
  it('keeps a block that ends just before a reader takes the samples', async () => {
    const recorder = createLoopDelayRecorder(10);
    recorders.push(recorder);
    recorder.start();
    // The reader's timer comes due during the block and runs first after it, before the
    // recorder's tick: with monitorEventLoopDelay, reset() there drops the block's sample.
    const taken: number[] = [];
    await sleep(30);
    const reader = setTimeout(() => taken.push(recorder.take().max / 1e6), 5);
    busyWait(300);
    await sleep(50);
    clearTimeout(reader);
    const after = recorder.take();
    expect(taken).toHaveLength(1);
    expect(Math.max(after.max / 1e6, taken[0] ?? 0)).toBeGreaterThan(300);
  });

  it('records each interval once: the counts of consecutive takes add up to the ticks', async () => {
    const recorder = createLoopDelayRecorder(10);
    recorders.push(recorder);
    recorder.start();
    await sleep(120);
    const first = recorder.take().count;
    await sleep(120);
    const second = recorder.take().count;
    expect(first).toBeGreaterThan(5);
    expect(second).toBeGreaterThan(5);
    expect(first + second).toBeLessThanOrEqual(25);
    expect(recorder.current().count).toBeLessThanOrEqual(2);
  });

  it('stops ticking after stop(), and rejects a resolution that is not a positive integer', async () => {
    const recorder = createLoopDelayRecorder(10);
    recorder.start();
    await sleep(50);
    recorder.stop();
    await sleep(50);
    expect(recorder.current().count).toBe(0);
    expect(() => createLoopDelayRecorder(0)).toThrow(TypeError);
    expect(() => createLoopDelayRecorder(2.5)).toThrow(/resolutionMs/);
  });
});
