// CI's gate before the timing-sensitive files (.ci/run): with LOOPSIGHT_TIMING_GATE set to a
// directory, the first timing-sensitive file of this run says it has arrived, then waits until CI
// opens the gate, once every run's CPU-heavy part (npm installs, tsc, the parallel files, the
// benchmark smoke run) is over. Without the variable (a developer's run) it does nothing.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const dir = process.env.LOOPSIGHT_TIMING_GATE;
if (dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `arrived-${process.env.LOOPSIGHT_LANE ?? process.ppid}`), '');
  // Bounded: a CI script that never opens it costs 20 minutes, not a hung run.
  for (const end = Date.now() + 20 * 60_000; !existsSync(path.join(dir, 'open')) && Date.now() < end; ) await sleep(500);
}
