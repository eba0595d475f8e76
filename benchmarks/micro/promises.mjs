// Cost per promise of the hooks the promise tracker could sit on, and of the tracker itself in each
// state, on one promise-heavy workload. Run from the repository root after a build:
//   node benchmarks/micro/promises.mjs
// Configurations alternate round by round; each figure is the median over rounds of
// (time per iteration - baseline time per iteration) / promises per iteration.
import { AsyncLocalStorage, createHook } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import { promiseHooks } from 'node:v8';

const dist = new URL('../../packages/promises/dist/index.js', import.meta.url).href;
const { createPromiseTracker } = await import(dist);

const als = new AsyncLocalStorage();
const scope = { correlationId: 'bench' };

// The workload: what a handler with a few awaits does (async calls, await of promises and values, a then).
async function leaf(i) {
  await null;
  return i;
}
async function work(i) {
  const a = await leaf(i);
  const b = await new Promise((resolve) => resolve(a + 1));
  const c = await Promise.resolve(b).then((v) => v + 1);
  return Promise.all([leaf(a), leaf(c)]);
}

const ITERATIONS = 20_000;
async function loop() {
  for (let i = 0; i < ITERATIONS; i++) await work(i);
}

/** Promises one iteration makes (counted with a hook). */
async function countPromises() {
  let n = 0;
  const stop = promiseHooks.onInit(() => n++);
  await work(1);
  stop();
  return n - 1; // the await of work() itself
}

const noop = () => {};
function tracker(mode) {
  return createPromiseTracker({ mode, leakAfterMs: 5_000, getScope: () => als.getStore(), onReport: noop });
}

/** Each configuration: set up, run the loop inside (or outside) a scope, tear down. */
const configs = {
  'no hooks (baseline)': { inScope: true, setup: () => noop },
  'v8.promiseHooks, empty init+settled': {
    inScope: true,
    setup: () => promiseHooks.createHook({ init: noop, settled: noop }),
  },
  'async_hooks, empty init+promiseResolve': {
    inScope: true,
    setup: () => {
      const hook = createHook({ init: noop, promiseResolve: noop }).enable();
      return () => hook.disable();
    },
  },
  'tracker full, promises outside any scope': {
    inScope: false,
    setup: () => {
      const t = tracker('full');
      t.start();
      return () => t.stop();
    },
  },
  'tracker full, promises in a request scope': {
    inScope: true,
    setup: () => {
      const t = tracker('full');
      t.start();
      return () => {
        t.scopeEnded(scope);
        t.stop();
      };
    },
  },
  'tracker sampled, between windows (hooks off)': {
    inScope: true,
    setup: () => {
      const t = createPromiseTracker({
        mode: 'sampled',
        sampleWindowMs: 1,
        sampleIntervalMs: 3_600_000,
        leakAfterMs: 1,
        getScope: () => als.getStore(),
        onReport: noop,
      });
      t.start();
      return () => t.stop();
    },
    // Let the 1 ms window close and drain before measuring.
    settle: 50,
  },
};

async function measure(name) {
  const config = configs[name];
  const teardown = config.setup();
  if (config.settle) await new Promise((resolve) => setTimeout(resolve, config.settle));
  const t0 = performance.now();
  if (config.inScope) await als.run(scope, loop);
  else await loop();
  const ms = performance.now() - t0;
  teardown();
  return (ms * 1e6) / ITERATIONS; // ns per iteration
}

const perIteration = await countPromises();
const ROUNDS = Number(process.env.ROUNDS ?? 9);
const samples = Object.fromEntries(Object.keys(configs).map((k) => [k, []]));
for (const name of Object.keys(configs)) await measure(name); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  const names = Object.keys(configs);
  // Alternate the order so that no configuration always runs right after the same one.
  if (round % 2 === 1) names.reverse();
  for (const name of names) samples[name].push(await measure(name));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(samples['no hooks (baseline)']);
console.log(`Node ${process.version}, ${perIteration} promises per iteration, ${ITERATIONS} iterations, ${ROUNDS} rounds (medians)\n`);
console.log('| configuration | ns per iteration | added ns per promise |');
console.log('|---|---:|---:|');
for (const name of Object.keys(configs)) {
  const m = median(samples[name]);
  const added = name === 'no hooks (baseline)' ? '' : ((m - base) / perIteration).toFixed(0);
  console.log(`| ${name} | ${m.toFixed(0)} | ${added} |`);
}
