// One loop timer where two would do: the heartbeat (every ≤ 25 ms) rides on a delay recorder's
// tick (core's sampler: every 10 ms) when one runs often enough, and beats on a timer of its own
// otherwise. An idle process pays for a timer's wake-ups, not for its callback: the heartbeat's 40
// a second measured 1.9–2.5 ms of CPU a second on a quiet machine; riding on the sampler saved
// 0.7 ms a second of the main thread's on a loaded one (docs/benchmarks.md).

/** Process-wide per thread, on globalThis: the ESM and CommonJS builds, or two copies, share it. */
const TICKS = Symbol.for('loopsight.loop-lag.ticks.v1');

interface Follower {
  /** The longest interval it may beat at. */
  readonly maxMs: number;
  readonly fn: (everyMs: number) => void;
  driver: Driver | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** A timer others may ride on: a delay recorder's, ticking every `everyMs`. */
export interface Driver {
  readonly everyMs: number;
  readonly followers: Set<Follower>;
}

interface Ticks {
  readonly drivers: Set<Driver>;
  readonly followers: Set<Follower>;
}

function ticks(): Ticks {
  const holder = globalThis as { [TICKS]?: Ticks };
  holder[TICKS] ??= { drivers: new Set(), followers: new Set() };
  return holder[TICKS];
}

/** Puts a follower on the slowest driver that ticks often enough for it, or on a timer of its own. */
function settle(follower: Follower): void {
  let best: Driver | undefined;
  for (const driver of ticks().drivers) {
    if (driver.everyMs <= follower.maxMs && (best === undefined || driver.everyMs > best.everyMs)) best = driver;
  }
  if (best !== undefined && best === follower.driver) return;
  if (best === undefined && follower.driver === undefined && follower.timer !== undefined) return;
  follower.driver?.followers.delete(follower);
  clearInterval(follower.timer);
  follower.driver = best;
  follower.timer = undefined;
  if (best) best.followers.add(follower);
  else follower.timer = setInterval(() => follower.fn(follower.maxMs), follower.maxMs).unref();
}

/** Calls `fn(everyMs)` at least every `maxMs` until the returned function is called. */
export function followTicks(maxMs: number, fn: (everyMs: number) => void): () => void {
  const follower: Follower = { maxMs, fn, driver: undefined, timer: undefined };
  ticks().followers.add(follower);
  settle(follower);
  return () => {
    ticks().followers.delete(follower);
    follower.driver?.followers.delete(follower);
    clearInterval(follower.timer);
    follower.driver = undefined;
    follower.timer = undefined;
  };
}

/** A timer ticking every `everyMs` offers its ticks: followers that fit move onto it. */
export function drive(everyMs: number): Driver {
  const driver: Driver = { everyMs, followers: new Set() };
  ticks().drivers.add(driver);
  for (const follower of ticks().followers) settle(follower);
  return driver;
}

/** Called by a driver's timer at each tick. */
export function tick(driver: Driver): void {
  for (const follower of driver.followers) follower.fn(driver.everyMs);
}

/** The driver's timer stopped: its followers move to another driver or back to timers of their own. */
export function stopDriving(driver: Driver): void {
  ticks().drivers.delete(driver);
  for (const follower of [...driver.followers]) settle(follower);
}
