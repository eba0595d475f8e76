import { createMonitor, type StallReport } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { reportLabels } from '@loopsight/core/exporter';
import { afterEach, describe, expect, it, vi } from 'vitest';

const stall = (at: number): StallReport => ({ type: 'stall', at, durationMs: 300, stack: [], stackSource: 'none', inflight: 0 });

afterEach(() => vi.restoreAllMocks());

describe("phase: 'startup' (set through internals by @loopsight/register)", () => {
  it('marks a stall that began before the process served, not one after; none without servingSince', () => {
    const seen: StallReport[] = [];
    const monitor = createMonitor({ onReport: () => {} }).on('stall', (r) => seen.push(r));
    internals(monitor).report(stall(500));
    internals(monitor).servingSince = () => 1_000;
    internals(monitor).report(stall(999));
    internals(monitor).report(stall(1_000));
    expect(seen.map((r) => r.phase)).toEqual([undefined, 'startup', undefined]);
  });

  it('writes no default report line for a startup stall; an onReport of your own gets it', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const quiet = createMonitor();
    internals(quiet).servingSince = () => 1_000;
    internals(quiet).report(stall(10));
    internals(quiet).report(stall(2_000));
    expect(write.mock.calls.map(([line]) => JSON.parse(String(line)).at)).toEqual([2_000]);
    const own: StallReport[] = [];
    const mine = createMonitor({ onReport: (r) => own.push(r as StallReport) });
    internals(mine).servingSince = () => 1_000;
    internals(mine).report(stall(10));
    expect(own.map((r) => r.phase)).toEqual(['startup']);
  });

  it('is counted under the route label __startup__', () => {
    const labels = reportLabels(100);
    expect(labels.stall({ ...stall(1), phase: 'startup', inflight: 2 }).route).toBe('__startup__');
    expect(labels.stall(stall(1)).route).toBe('__none__');
  });
});
