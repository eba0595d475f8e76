// CPU an idle server uses (no requests at all): what loopsight's timers and worker cost a process
// that has nothing to do. The variants of servers/<framework>.mjs run side by side, idle, for
// --seconds; the figure is each process's own process.cpuUsage() (all threads) over that time, as
// a share of one core, and beside it the main thread's alone (Linux: /proc/<pid>/task/<pid>/schedstat).
// With --rounds above 1, every round starts fresh processes; the table gives medians over rounds.
//   node micro/idle.mjs [--seconds 20] [--rounds 1] [--framework express] [--variant NAME]...
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '1' },
    framework: { type: 'string', default: 'express' },
    variant: { type: 'string', multiple: true },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const variants = args.variant ?? [
  'bare',
  'als-floor',
  'loopsight-no-looplag',
  'loopsight',
  'loopsight-promises-sampled',
  'loopsight-profiler',
  'watchdog-debugger-on-stall',
  'watchdog-debugger-always',
];

/** The main thread's CPU time, µs (NaN where /proc is not). */
function mainMicros(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ', 1)[0]) / 1000;
  } catch {
    return Number.NaN;
  }
}

const ask = (child, type, seq) =>
  new Promise((resolve) => {
    const on = (m) => {
      if (m?.seq !== seq) return;
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
    child.send({ type, seq });
  });

async function round() {
  const servers = await Promise.all(
    variants.map(
      (variant) =>
        new Promise((resolve, reject) => {
          const child = fork(new URL(`../servers/${args.framework}.mjs`, import.meta.url), [variant], {
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          });
          child.once('exit', (code) => reject(new Error(`${variant} exited with ${code}`)));
          child.on('message', (m) => m?.type === 'ready' && resolve({ variant, child }));
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 3000)); // start-up work done
  await Promise.all(servers.map((s) => ask(s.child, 'begin', 1)));
  const main0 = servers.map((s) => mainMicros(s.child.pid));
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const ends = await Promise.all(servers.map((s) => ask(s.child, 'end', 2)));
  const main = servers.map((s, i) => mainMicros(s.child.pid) - main0[i]);
  for (const s of servers) {
    s.child.removeAllListeners('exit');
    s.child.kill();
  }
  // ms of CPU per second of wall time
  return servers.map((_s, i) => ({ all: (ends[i].cpu.user + ends[i].cpu.system) / 1000 / SECONDS, main: main[i] / 1000 / SECONDS }));
}

const results = [];
for (let r = 0; r < ROUNDS; r++) results.push(await round());
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
console.log(
  `Node ${process.version}; ${args.framework} servers idle for ${SECONDS} s side by side, ${ROUNDS} round(s) of fresh processes; medians; CPU of each process (all threads) and of its main thread\n`,
);
console.log('| variant | CPU ms per s, all threads | % of a core | main thread ms per s | range over rounds (all threads) |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const [i, variant] of variants.entries()) {
  const all = results.map((r) => r[i].all);
  const ms = median(all);
  console.log(
    `| ${variant} | ${ms.toFixed(2)} | ${(ms / 10).toFixed(2)} % | ${median(results.map((r) => r[i].main)).toFixed(2)} | ${Math.min(...all).toFixed(2)} to ${Math.max(...all).toFixed(2)} |`,
  );
}
process.exit(0);
