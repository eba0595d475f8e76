import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { StallReport } from '@loopsight/core';
import ts from 'typescript';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedCapture } from '../../../test-support/capture.js';
import { until } from '../../../test-support/until.js';

// One table of stall scenarios, run on the main thread and in a worker thread, on Express and
// Fastify: the watchdog thread watches both with one engine, so what a report says must not
// depend on the thread that blocked.

const FIXTURE = fileURLToPath(new URL('./fixtures/stall-table.mjs', import.meta.url));
/** The line of the busy loop in BLOCKER_TS: a stall's frame maps back to it. */
const BLOCKER_LINE = 4;
const BLOCKER_TS = `export function tsBlock(ms: number): number {
  const end: number = Date.now() + ms;
  let spins: number = 0;
  while (Date.now() < end) spins++;
  return spins;
}
`;

let tsModule: string;
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'loopsight-table-'));
  const out = ts.transpileModule(BLOCKER_TS, {
    fileName: 'blocker.ts',
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: true },
  });
  writeFileSync(join(dir, 'blocker.ts'), BLOCKER_TS);
  writeFileSync(join(dir, 'blocker.js'), out.outputText);
  writeFileSync(join(dir, 'blocker.js.map'), out.sourceMapText ?? '');
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  tsModule = pathToFileURL(join(dir, 'blocker.js')).href;
});

interface Served {
  url: string;
  stalls: StallReport[];
  /** What `loopLag.expected.when` was given, by request id. */
  when: Map<string, { culprit?: { functionName: string; url: string }; requestSource?: string }>;
  child: ChildProcess;
  lines: string[];
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

async function serve(framework: string, thread: string, extra: object = {}): Promise<Served> {
  const child = spawn(process.execPath, [FIXTURE, JSON.stringify({ framework, thread, tsModule, ...extra })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const served: Served = { url: '', stalls: [], when: new Map(), child, lines: [] };
  child.stderr?.on('data', (chunk) => served.lines.push(String(chunk)));
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    served.lines.push(line);
    const message = JSON.parse(line) as { event: string; port?: number; report?: StallReport };
    if (message.event === 'stall' && message.report) served.stalls.push(message.report);
    if (message.event === 'listening') {
      served.url = `http://127.0.0.1:${message.port}`;
      break;
    }
  }
  if (!served.url) throw new Error(`the app did not start: ${served.lines.join('\n')}`);
  // The rest of its lines, as they come.
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    served.lines.push(line);
    const message = JSON.parse(line) as {
      event: string;
      report?: StallReport;
      id?: string;
      culprit?: { functionName: string; url: string };
      requestSource?: string;
    };
    if (message.event === 'stall' && message.report) served.stalls.push(message.report);
    if (message.event === 'when' && message.id) served.when.set(message.id, message);
  });
  return served;
}

/** Sends a request with id `id`, and waits for the one stall report of it (by its id, or its culprit). */
async function stallOf(served: Served, path: string, id: string, culprit?: string): Promise<StallReport> {
  const res = await request(`${served.url}${path}`, { headers: { 'x-request-id': id } });
  expect(res.statusCode).toBe(200);
  await res.body.json();
  // Without a pause (rate-limited) the request is among the candidates: the only one in flight.
  const mine = () =>
    served.stalls.filter(
      (r) =>
        r.request?.correlationId === id ||
        (culprit && r.culprit?.functionName === culprit) ||
        (!r.request && r.candidates?.some((c) => c.correlationId === id)),
    );
  await until(() => mine().length > 0, 10_000, 20);
  // A second report of the same block would still count.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const found = mine();
  expect(found, JSON.stringify(served.stalls)).toHaveLength(1);
  return found[0] as StallReport;
}

describe.each([
  ['express', 'main'],
  ['express', 'worker'],
  ['fastify', 'main'],
  ['fastify', 'worker'],
])('%s on the %s thread', (framework, thread) => {
  let served: Served;
  beforeAll(async () => {
    served = await serve(framework, thread);
  }, 60_000);

  const threadOf = (report: StallReport) => {
    // Worker threads are watched through the inspector whatever the backend (docs/loop-lag.md).
    expect(report.capture).toBe(thread === 'main' ? expectedCapture() : 'inspector');
    if (thread === 'main') expect(report.thread).toBeUndefined();
    else expect(report.thread).toMatchObject({ id: expect.any(Number) });
  };

  it('a 300 ms block: its function (the culprit), its request and route, paused while blocked', async () => {
    const report = await stallOf(served, '/block/300', `${thread}-block`);
    threadOf(report);
    expect(report.durationMs).toBeGreaterThanOrEqual(250);
    expect(report.culprit, JSON.stringify(report)).toMatchObject({ functionName: 'blockInHandler' });
    expect(report.culprit?.url).toMatch(/stall-table\.mjs$/);
    expect(report.request).toMatchObject({ correlationId: `${thread}-block`, route: '/block/:ms', method: 'GET' });
    expect(['pause', 'late-pause']).toContain(report.requestSource);
  });

  it('a stall inside a native call (JSON.parse of 20 MB): a late pause, the caller still on the stack names it and its request', async () => {
    const report = await stallOf(served, '/native', `${thread}-native`, 'importOrders');
    threadOf(report);
    expect(report.culprit, JSON.stringify(report)).toMatchObject({ functionName: 'importOrders' });
    expect(report.request).toMatchObject({ correlationId: `${thread}-native`, route: '/native' });
    // Where the pause lands depends on the machine's load: late (the usual case, told by
    // `enteredAfter`) or, rarely, inside the parse's own JavaScript.
    if (report.stackSource === 'late-pause') {
      expect(report.requestSource).toBe('late-pause');
      // The inspector tells the top frame was entered after the pause (1); a native sample cannot
      // tell, and the field is absent (taken as 1 all the same).
      expect(report.enteredAfter).toBe(report.capture === 'native' ? undefined : 1);
      expect(report.stack[0]?.functionName).toBe('countRows');
    } else expect(report.requestSource).toBe('pause');
  });

  it('source-mapped TypeScript: the frame is the .ts line, with the location that ran beside it', async () => {
    const report = await stallOf(served, '/ts', `${thread}-ts`);
    threadOf(report);
    const frame = report.stack.find((f) => f.functionName === 'tsBlock');
    expect(frame, JSON.stringify(report.stack)).toMatchObject({ line: BLOCKER_LINE });
    expect(frame?.url).toMatch(/blocker\.ts$/);
    expect(frame?.generated?.url).toMatch(/blocker\.js$/);
    expect(report.culprit?.functionName).toBe('tsBlock');
  });

  it('expectBlocking(): counted, marked expected, the declaring request named, no pause', async () => {
    const report = await stallOf(served, '/declared', `${thread}-declared`);
    threadOf(report);
    expect(report).toMatchObject({ expected: true, requestSource: 'expectBlocking', stackSkipped: 'expected', stack: [] });
    expect(report.request).toMatchObject({ correlationId: `${thread}-declared`, route: '/declared' });
  });

  it('loopLag.expected.when: decides from the finished report (culprit named); a match is counted as expected, without its stack', async () => {
    const id = `${thread}-when`;
    const report = await stallOf(served, '/when', id);
    threadOf(report);
    // The predicate was given this request's finished report; a prompt pause names the block.
    const saw = served.when.get(id);
    expect(['pause', 'late-pause'], JSON.stringify(saw)).toContain(saw?.requestSource);
    if (saw?.requestSource === 'pause') expect(saw.culprit?.functionName).toBe('blockForWhen');
    expect(report).toMatchObject({ expected: true, stackSkipped: 'expected', stack: [] });
    expect(report.request).toMatchObject({ correlationId: id, route: '/when' });
  });
});

describe.each(['main', 'worker'])('rate limit on the %s thread', (thread) => {
  it('maxStacksPerMinute 2: past it, stalls are still reported and timed, without a stack', async () => {
    const served = await serve('express', thread, { maxStacksPerMinute: 2 });
    const reports: StallReport[] = [];
    // A stall without a pause knows no request (it ended before the report): each block's is the
    // longest stall that overlapped its call (a loaded machine adds short ones of its own).
    for (let i = 0; i < 4; i++) {
      const before = served.stalls.length;
      const sent = Date.now();
      await (await request(`${served.url}/block/200`)).body.json();
      const answered = Date.now();
      const during = () => served.stalls.slice(before).filter((r) => r.at + r.durationMs >= sent && r.at <= answered);
      await until(() => during().length > 0, 10_000, 20);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const longest = during().sort((a, b) => b.durationMs - a.durationMs)[0];
      expect(longest, JSON.stringify(served.stalls)).toBeDefined();
      reports.push(longest as StallReport);
    }
    // The warm-up took one capture of the two.
    const withStacks = reports.filter((r) => r.stack.length > 0);
    expect(withStacks.length, JSON.stringify(reports)).toBeLessThanOrEqual(1);
    const limited = reports.filter((r) => r.stackSkipped === 'rate-limited');
    expect(limited.length).toBeGreaterThanOrEqual(3);
    for (const report of limited) {
      expect(report.durationMs).toBeGreaterThanOrEqual(150);
      expect(report.stack).toEqual([]);
    }
  }, 60_000);
});
