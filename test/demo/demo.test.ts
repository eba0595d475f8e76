import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

// The README's main command runs examples/express-demo against the packages' builds. Its report
// sections come from other threads and timers: five runs in a row must each print the stall (with
// its culprit and request), the floating promise, and loop stats of the window that holds the
// 250 ms block, as the README's sample shows.
const demo = fileURLToPath(new URL('../../examples/express-demo/', import.meta.url));

it('the demo prints its stall and promise reports, and the stats of the window with the block, on every run (5 runs, 2 at a time)', {
  timeout: 120_000,
}, async () => {
  // Two runs side by side: each mostly waits, and a neighbour's load is what CI adds anyway.
  const check = async (run: number) => {
    const { stdout } = await promisify(execFile)(process.execPath, ['index.js'], { cwd: demo, timeout: 30_000 });
    const section = (title: string) => stdout.split(`\n${title}`)[1]?.split('\n\n')[0] ?? '';
    const stalls = section('Stall reports');
    expect(stalls, `run ${run}:\n${stdout}`).toMatch(/\d+ ms {2}GET \/reports\/daily {2}id [\w-]+ {2}\(stack: (pause|late-pause)/);
    expect(stalls, `run ${run}:\n${stdout}`).toMatch(/culprit buildReport \(.*index\.js:\d+:\d+\)/);
    const promises = section('Promise reports');
    expect(promises, `run ${run}:\n${stdout}`).toMatch(/floating {2}POST \/checkout {2}id checkout-9c1d/);
    expect(promises, `run ${run}:\n${stdout}`).toMatch(/culprit sendReceipt/);
    // The delay sample that spans the block is the block's length less up to one 10 ms resolution.
    const loop = section('Event loop');
    expect(loop, `run ${run}:\n${stdout}`).toMatch(/window that holds the block/);
    const max = Number(/ max ([\d.]+) ms /.exec(loop)?.[1]);
    expect(max, `run ${run}:\n${stdout}`).toBeGreaterThanOrEqual(250 - 50);
  };
  await Promise.all([check(1), check(2)]);
  await Promise.all([check(3), check(4)]);
  await check(5);
});
