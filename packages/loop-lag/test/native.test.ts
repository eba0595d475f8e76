import type { StallReport } from '@loopsight/core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameworks, type TestApp } from '../../../test-support/apps.js';
import { hugeJson } from '../../../test-support/blockers.js';
import { until } from '../../../test-support/until.js';

// Stalls spent inside synchronous native calls, with the profiler at its default (off): V8 takes
// the pause only after each call returns, yet the report names the application function that
// made the call and the request it ran for, because that function was still on the stack.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const cases = [
  { kind: 'pbkdf2', culprit: 'hashPasswordSync' },
  { kind: 'gzip', culprit: 'compressSync' },
  { kind: 'json', culprit: 'importOrders' },
  { kind: 'read', culprit: 'readLargeFile' },
  { kind: 'exec', culprit: 'runReportSync' },
];

// Where the pause lands and which frame is named does not depend on the framework: Express runs
// every kind of call. Each other adapter runs one kind, a different one each, which still checks
// its own part (the request and route its scope gives the report) and sees three of the kinds a
// second time.
describe.each([
  ['express 5', cases.map((c) => c.kind)],
  ['fastify 5', ['gzip']],
  ['koa 3', ['json']],
  ['hono 4', ['exec']],
])('%s: a stall inside a synchronous native call', (name, kinds) => {
  let app: TestApp;
  const reports: StallReport[] = [];
  beforeAll(async () => {
    hugeJson();
    const framework = frameworks.find((f) => f.name === name);
    if (!framework) throw new Error(name);
    app = await framework.start({ promises: false, loopLag: { maxStacksPerMinute: 1000 }, onReport: () => {} });
    app.monitor.on('stall', (r) => reports.push(r));
    // A first request builds the router (Hono's RegExpRouter compiles its routes then: 759 ms once on
    // a loaded machine, one stall with the native call that followed it): before the measured ones.
    await (await request(`${app.url}/hops/1`)).body.text();
    await sleep(300);
  });
  afterAll(() => app.close());

  it.each(cases.filter((c) => kinds.includes(c.kind)))('$kind: one report naming $culprit and the request', async ({ kind, culprit }) => {
    const id = `native-${kind}`;
    const res = await request(`${app.url}/native/${kind}`, { headers: { 'x-request-id': id } });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { result: number }).result).toBeGreaterThan(0);
    // The report arrives once the loop runs again; a loaded machine may deliver it late.
    const mine = () => reports.filter((r) => r.culprit?.functionName === culprit || r.request?.correlationId === id);
    await until(() => mine().length > 0, 5_000, 50);
    await sleep(200);
    const found = mine();
    expect(found, JSON.stringify(reports.slice(-3))).toHaveLength(1);
    const report = found[0] as StallReport;
    if (report.capture === 'native' && report.stackSource === 'late-pause') {
      // A late native sample cannot tell whether its top frame was entered after the native call
      // returned (the inspector asks the debugger): the culprit is the first application frame
      // below it, and the blocking function is on the stack.
      expect(report.stack.map((f) => f.functionName)).toContain(culprit);
    } else {
      expect(report.culprit?.functionName).toBe(culprit);
      expect(report.culprit?.url).toMatch(/test-support\/blockers\.ts$/);
    }
    expect(report.request?.correlationId).toBe(id);
    expect(report.request?.route).toBe('/native/:kind');
    // A pause that landed while native code still ran is late; the request is the paused call's either way.
    expect(report.requestSource).toBe(report.stackSource === 'pause' ? 'pause' : 'late-pause');
    expect(['pause', 'late-pause']).toContain(report.stackSource);
    expect(report.candidates).toBeUndefined();
  });
});
