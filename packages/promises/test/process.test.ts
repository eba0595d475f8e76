import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/serve.mjs', import.meta.url));

function serve(framework: string, scenario: string, mode: string, flags: string[] = []) {
  const child = spawnSync(process.execPath, [...flags, fixture, framework, scenario, mode], { encoding: 'utf8', timeout: 15_000 });
  expect(child.error, 'the process had to be killed: something kept it alive').toBeUndefined();
  const reports = child.stderr
    .split('\n')
    .filter((line) => line.startsWith('{"loopsight":"promise"'))
    .map((line) => JSON.parse(line));
  return { status: child.status, stderr: child.stderr, reports };
}

// Runs the built packages: `pnpm test` builds first.
describe('in a real process', () => {
  for (const framework of ['express', 'fastify', 'koa']) {
    it(`reports a rejection nobody handles with the request's id, and the process still crashes as before (${framework})`, () => {
      const { status, stderr, reports } = serve(framework, 'unhandled', 'full');
      expect(status).toBe(1);
      expect(stderr).toContain('Error: card declined');
      expect(reports).toHaveLength(1);
      expect(reports[0]).toMatchObject({
        kind: 'unhandled',
        reason: 'Error: card declined',
        request: { correlationId: 'fixture-1', method: 'GET' },
      });
      expect(reports[0].stack.slice(0, 2).map((f: { functionName: string }) => f.functionName)).toEqual(['chargeCard', 'work']);
      expect(reports[0].stack[0].url).toMatch(/fixtures\/serve\.mjs$/);
      // Reported before Node's own crash output.
      expect(stderr.indexOf('"kind":"unhandled"')).toBeLessThan(stderr.indexOf('Node.js v'));
    });

    it(`floats a promise, reports it and exits on its own (${framework})`, () => {
      const { status, reports } = serve(framework, 'floating', 'full');
      expect(status).toBe(0);
      expect(reports.map((r) => [r.kind, r.request.correlationId, r.stack[0].functionName])).toEqual([['floating', 'fixture-1', 'audit']]);
    });
  }

  it('leaves --unhandled-rejections=warn alone: Node still warns, the process lives on, the rejection is reported', () => {
    const { status, stderr, reports } = serve('express', 'unhandled', 'sampled', ['--unhandled-rejections=warn']);
    expect(status).toBe(0);
    expect(stderr).toContain('UnhandledPromiseRejectionWarning: Error: card declined');
    expect(reports.map((r) => [r.kind, r.request.correlationId])).toEqual([['unhandled', 'fixture-1']]);
  });

  it('reports under --unhandled-rejections=strict too (the crash comes first there)', () => {
    const { status, reports } = serve('koa', 'unhandled', 'full', ['--unhandled-rejections=strict']);
    expect(status).toBe(1);
    expect(reports.map((r) => [r.kind, r.request.correlationId, r.reason])).toEqual([['unhandled', 'fixture-1', 'Error: card declined']]);
  });
});
