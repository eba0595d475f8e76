import { createHistogram } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { DELAY_BUCKETS_MS, delayBucketCounts } from '../src/sampler.js';

const MS = 1e6;

function histogramOf(samplesMs: number[]) {
  const h = createHistogram();
  for (const ms of samplesMs) h.record(Math.round(ms * MS));
  return h;
}

const at = (counts: number[], boundMs: number) => counts[DELAY_BUCKETS_MS.indexOf(boundMs)];

describe('delayBucketCounts', () => {
  it('keeps one long stall in a short window above its bound', () => {
    // Five samples, one of them 300 ms late: 96.9% of 5 rounds to 5, which would hide the stall.
    const counts = delayBucketCounts(histogramOf([10.2, 10.4, 10.1, 310, 10.3]), 10);
    expect(at(counts, 1)).toBe(4);
    expect(at(counts, 250)).toBe(4);
    expect(at(counts, 500)).toBe(5);
    expect(at(counts, 10000)).toBe(5);
  });

  it('puts every sample above the bounds under the minimum delay', () => {
    const counts = delayBucketCounts(histogramOf([40, 45, 50]), 10);
    expect(at(counts, 25)).toBe(0);
    expect(at(counts, 50)).toBe(3);
  });

  it('is cumulative and splits a large body within one percentile step', () => {
    const samples = [...Array.from({ length: 900 }, () => 11), ...Array.from({ length: 100 }, () => 70)];
    const counts = delayBucketCounts(histogramOf(samples), 10);
    counts.forEach((c, i) => {
      if (i > 0) expect(c).toBeGreaterThanOrEqual(counts[i - 1] ?? 0);
    });
    expect(at(counts, 1)).toBeGreaterThanOrEqual(875);
    expect(at(counts, 1)).toBeLessThanOrEqual(900);
    expect(at(counts, 50)).toBeLessThan(1000);
    expect(at(counts, 100)).toBe(1000);
  });

  it('reads zeros from an empty histogram', () => {
    expect(delayBucketCounts(createHistogram(), 10).every((c) => c === 0)).toBe(true);
  });
});
