// Another debugger pausing the main thread while the native backend takes stacks: in a file of
// its own, as the addon keeps a thread's first registration (core's scope store here).
import { Worker } from 'node:worker_threads';
import { createMonitor, type Monitor, type StallReport } from '@loopsight/core';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeNode } from '../../../test-support/capture.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const monitors: Monitor[] = [];
afterEach(async () => {
  await Promise.all(monitors.splice(0).map((m) => m.stop()));
});

function busy(ms: number) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

// Pauses the main thread every 200 ms through an inspector session of its own, holds each pause
// 50 ms, and tells, at the end, how many pauses it made and whether any was resumed before it
// asked (by someone else).
const PAUSER = `
const { parentPort } = require('node:worker_threads');
const { Session } = require('node:inspector');
const session = new Session();
session.connectToMainThread();
const post = (method) => new Promise((resolve) => session.post(method, {}, () => resolve()));
let pauses = 0, early = 0, resumeSent = true, timer;
session.on('Debugger.paused', () => {
  pauses++;
  resumeSent = false;
  setTimeout(() => { resumeSent = true; post('Debugger.resume'); }, 50);
});
session.on('Debugger.resumed', () => { if (!resumeSent) early++; });
parentPort.on('message', (m) => {
  if (m === 'start') {
    post('Debugger.enable');
    timer = setInterval(() => post('Debugger.pause'), 200);
    return;
  }
  clearInterval(timer);
  setTimeout(() => { parentPort.postMessage({ pauses, early }); session.disconnect(); }, 300);
});
parentPort.postMessage('ready');
`;

describe.runIf(nativeNode)('native backend: another debugger', () => {
  it('a second inspector session pausing the main thread every 200 ms for 10 s: every stall of 300 ms or more has its stack (the blocking function); none of its pauses is resumed early', {
    timeout: 40_000,
  }, async () => {
    const reports: StallReport[] = [];
    const monitor = createMonitor({ promises: false, onReport: () => {}, loopLag: { capture: 'native', maxStacksPerMinute: 1000 } });
    monitors.push(monitor);
    monitor.on('stall', (r) => reports.push(r));
    monitor.start();
    await sleep(500);
    const pauser = new Worker(PAUSER, { eval: true });
    await new Promise((resolve) => pauser.once('message', resolve));
    pauser.postMessage('start');
    const ids: string[] = [];
    const started = Date.now();
    for (let i = 0; Date.now() - started < 10_000; i++) {
      const id = `paused-${i}`;
      ids.push(id);
      monitor.run({ correlationId: id, route: 'job' }, () => busy(400));
      await sleep(600);
    }
    pauser.postMessage('stop');
    const result = (await new Promise((resolve) => pauser.on('message', resolve))) as { pauses: number; early: number };
    await pauser.terminate();
    await sleep(300);
    expect(result.pauses).toBeGreaterThanOrEqual(30);
    expect(result.early).toBe(0);
    const long = reports.filter((r) => r.durationMs >= 300);
    expect(long.length, JSON.stringify(reports)).toBeGreaterThanOrEqual(ids.length - 1);
    for (const r of long) {
      expect(r, JSON.stringify(r)).toMatchObject({ capture: 'native' });
      expect(r.stack.length).toBeGreaterThan(0);
      expect(r.debuggerAttached).toBeUndefined();
      // The native backend names no request (docs/loop-lag.md), and the job, synchronous, was over
      // when the report was made: the stack is what says where the time went.
      expect(r.request).toBeUndefined();
      expect(r.stack.some((f) => f.functionName === 'busy')).toBe(true);
    }
  });
});
