// CPU an idle server uses (no requests at all): what loopsight's timers and worker cost a process
// that has nothing to do. Each variant of servers/express.mjs runs side by side, idle, for SECONDS;
// the figure is its own process.cpuUsage() (all threads) over that time, as a share of one core.
//   node micro/idle.mjs [seconds]      (default 20)
import { fork } from 'node:child_process';

const SECONDS = Number(process.argv[2] ?? 20);
const variants = [
  'bare',
  'als-floor',
  'loopsight-no-looplag',
  'loopsight',
  'loopsight-promises-sampled',
  'loopsight-profiler',
  'watchdog-debugger-on-stall',
  'watchdog-debugger-always',
];
const servers = await Promise.all(
  variants.map(
    (variant) =>
      new Promise((resolve, reject) => {
        const child = fork(new URL('../servers/express.mjs', import.meta.url), [variant], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        child.once('exit', (code) => reject(new Error(`${variant} exited with ${code}`)));
        child.on('message', (m) => m?.type === 'ready' && resolve({ variant, child }));
      }),
  ),
);
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
await new Promise((r) => setTimeout(r, 3000)); // start-up work done
await Promise.all(servers.map((s) => ask(s.child, 'begin', 1)));
await new Promise((r) => setTimeout(r, SECONDS * 1000));
const ends = await Promise.all(servers.map((s) => ask(s.child, 'end', 2)));
for (const s of servers) s.child.kill();
console.log(`Node ${process.version}; express servers idle for ${SECONDS} s side by side; CPU of each process (all threads)\n`);
console.log('| variant | CPU ms per s | % of a core |\n| --- | ---: | ---: |');
for (const [i, s] of servers.entries()) {
  const ms = (ends[i].cpu.user + ends[i].cpu.system) / 1000 / SECONDS;
  console.log(`| ${s.variant} | ${ms.toFixed(2)} | ${(ms / 10).toFixed(2)} % |`);
}
process.exit(0);
