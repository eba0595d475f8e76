import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from '../../../test-support/child.js';
import { ahead } from '../../../test-support/lanes.js';

// A test suite builds an app per test, each with loopsight mounted, and closes it after the test:
// the run must end on its own, warning-free. Nothing here is timed (the runs are killed at 90 s
// only so that a run kept alive fails its test), so it runs with the parallel files.
const fixture = (name: string) => fileURLToPath(new URL(`../../../test-support/fixtures/${name}`, import.meta.url));

describe('test runners: a suite that builds an app per test', () => {
  const suite = (name: string) => fixture(`suite/${name}`);
  const mocha = fileURLToPath(import.meta.resolve('mocha/bin/mocha.js'));
  // Express runs the full 1,000 tests under each runner (whose part is to end the run once the
  // last test's app is closed). Koa and Fastify run 200: what their adapters could leak per app (a
  // listener, an inspector session) warns by the 11th app, and what every adapter shares is Express's.
  const runs = [
    { runner: 'node:test', framework: 'express', n: 1000, args: ['--test', '--test-reporter=tap', suite('node-test.test.mjs')] },
    { runner: 'mocha', framework: 'express', n: 1000, args: [mocha, '--reporter=dot', '--timeout=30000', suite('mocha.test.mjs')] },
    { runner: 'node:test', framework: 'koa', n: 200, args: ['--test', '--test-reporter=tap', suite('node-test.test.mjs')] },
    { runner: 'node:test', framework: 'fastify', n: 200, args: ['--test', '--test-reporter=tap', suite('node-test.test.mjs')] },
    { runner: 'mocha', framework: 'fastify', n: 200, args: [mocha, '--reporter=dot', '--timeout=30000', suite('mocha.test.mjs')] },
  ];
  // Mocha's own 2 s per test is no limit here: a test's app waited over 2 s once on a loaded CI
  // machine (Node 26), and these runs assert no duration.
  // Two runs side by side (the parallel files run beside them), ahead of their tests (the two of
  // 1,000 first); each is killed (failing its test) at 90 s. They assert no duration.
  const scenario = ahead(
    2,
    Object.fromEntries(
      runs.map(({ runner, framework, n, args }) => [
        `${runner}, ${framework}`,
        () =>
          runNode(args, {
            timeoutMs: 90_000,
            env: { ...process.env, LOOPSIGHT_SUITE_FRAMEWORK: framework, LOOPSIGHT_SUITE_N: String(n), NODE_OPTIONS: '' },
          }).catch((error: Error) => {
            throw new Error(`the run had to be killed: something kept it alive: ${error.message}`);
          }),
      ]),
    ),
  );
  for (const { runner, framework, n } of runs) {
    it(`${runner}, ${framework}: ${n.toLocaleString('en')} tests pass and the run exits on its own, with no listener or inspector warnings`, {
      timeout: 150_000,
    }, async () => {
      const child = await scenario(`${runner}, ${framework}`);
      expect(child.code, child.stdout + child.stderr).toBe(0);
      const warnings = (child.stdout + child.stderr)
        .split('\n')
        .filter((l) => /MaxListenersExceeded|Inspector error|\[LOOPSIGHT_[A-Z_]+\]/.test(l))
        // A starved machine can hold a stall's capture past its bound (building 200 apps is work):
        // said once by design (docs/errors.md), it is not what these runs look for.
        .filter((l) => !/\[LOOPSIGHT_CAPTURE_FAILED\].*: no answer \(reported once/.test(l));
      expect(warnings, child.stderr.slice(-3_000)).toEqual([]);
      expect(child.stdout).toMatch(runner === 'mocha' ? new RegExp(`${n} passing`) : new RegExp(`^# pass ${n}$`, 'm'));
    });
  }
});
