import { createHistogram } from 'node:perf_hooks';
import { createLoopDelayRecorder, type LoopDelayReader } from '@loopsight/loop-lag';
import { beyondMs, NS_PER_MS, percentileSteps } from '@loopsight/loop-lag/kit';
import { afterEach, describe, expect, it } from 'vitest';
import { busyWait } from '../../../test-support/hops.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const readers: LoopDelayReader[] = [];
afterEach(() => {
  for (const r of readers.splice(0)) r.close();
});

function open(resolutionMs = 10): LoopDelayReader {
  const reader = createLoopDelayRecorder(resolutionMs).open();
  readers.push(reader);
  return reader;
}

describe('createLoopDelayRecorder', () => {
  it('keeps a block that ends just before a reader takes the samples', async () => {
    const reader = open();
    // The reader's timer comes due during the block and runs first after it, before the
    // recorder's tick: with monitorEventLoopDelay, reset() there drops the block's sample.
    const taken: number[] = [];
    await sleep(30);
    const timer = setTimeout(() => taken.push(reader.take().max / 1e6), 5);
    busyWait(300);
    await sleep(50);
    clearTimeout(timer);
    const after = reader.take();
    expect(taken).toHaveLength(1);
    expect(Math.max(after.max / 1e6, taken[0] ?? 0)).toBeGreaterThan(300);
  });

  it('records each interval once: the counts of consecutive takes add up to the ticks', async () => {
    const reader = open();
    await sleep(120);
    const first = reader.take().count;
    await sleep(120);
    const second = reader.take().count;
    expect(first).toBeGreaterThan(5);
    expect(second).toBeGreaterThan(5);
    expect(first + second).toBeLessThanOrEqual(25);
    expect(reader.current().count).toBeLessThanOrEqual(2);
  });

  it('gives every reader every sample from one timer: a take by one loses nothing for another', async () => {
    const recorder = createLoopDelayRecorder(10);
    const a = recorder.open();
    const b = recorder.open();
    readers.push(a, b);
    expect(recorder.readers).toBe(2);
    await sleep(60);
    const early = a.take().count;
    busyWait(150);
    await sleep(60);
    const late = a.take();
    const whole = b.take();
    expect(early + late.count).toBe(whole.count);
    expect(late.max / NS_PER_MS).toBeGreaterThan(140);
    expect(whole.max).toBe(late.max);
    a.close();
    a.close();
    expect(recorder.readers).toBe(1);
    await sleep(40);
    expect(b.current().count).toBeGreaterThan(0);
  });

  it('stops ticking after its last reader closes, and rejects a resolution that is not an integer from 1 to 1000', async () => {
    const recorder = createLoopDelayRecorder(10);
    const reader = recorder.open();
    await sleep(50);
    reader.close();
    expect(recorder.readers).toBe(0);
    await sleep(50);
    expect(reader.current().count).toBe(0);
    expect(() => createLoopDelayRecorder(0)).toThrow(TypeError);
    expect(() => createLoopDelayRecorder(2.5)).toThrow(/resolutionMs/);
    expect(() => createLoopDelayRecorder(1_001)).toThrow(/resolutionMs/);
  });
});

describe('delay arithmetic', () => {
  it('takes the resolution off each sample and never reads below 0', () => {
    expect(beyondMs(10.5 * NS_PER_MS, 10)).toBeCloseTo(0.5);
    expect(beyondMs(9 * NS_PER_MS, 10)).toBe(0);
  });

  it('lists percentile steps lowest first, ending at 100 with the maximum (HDR precision)', () => {
    const h = createHistogram();
    for (const ms of [10, 11, 12, 50]) h.record(ms * NS_PER_MS);
    const steps = percentileSteps(h);
    expect(steps.map(([p]) => p)).toEqual([...steps.map(([p]) => p)].sort((x, y) => x - y));
    expect(steps.at(-1)?.[0]).toBe(100);
    expect((steps.at(-1)?.[1] ?? 0) / NS_PER_MS).toBeCloseTo(50, 0);
  });
});
