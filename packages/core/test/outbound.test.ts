import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { createMonitor, type MonitorOptions } from '@loopsight/core';
import { type OutboundWait, subscribeOutbound } from '@loopsight/core/exporter';
import { Agent, Pool, fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { outboundObserving } from '../src/outbound.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// A slow origin: every answer takes 100 ms, so a pool of 2 connections serves 20 requests a second.
const servers: Server[] = [];
async function slowOrigin(host = '127.0.0.1', answerMs = 100): Promise<string> {
  const server = createServer((_req, res) => setTimeout(() => res.end('ok'), answerMs));
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  servers.push(server);
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}
let origin: string;
beforeAll(async () => {
  origin = await slowOrigin();
});
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** A started monitor and the waits it hands to exporters. */
function monitored(options: MonitorOptions = {}) {
  const monitor = createMonitor({ loopLag: false, promises: false, onReport: () => {}, ...options });
  const waits: OutboundWait[] = [];
  const unsubscribe = subscribeOutbound(monitor, { name: 'test', site: 'test' }, { wait: (w) => waits.push(w) });
  monitor.start();
  stops.push(async () => {
    unsubscribe();
    await monitor.stop();
  });
  return { monitor, waits };
}

function pool(url: string) {
  const p = new Pool(url, { connections: 2 });
  stops.push(() => p.close());
  return p;
}

/** Resource Timing entries reach observers a moment after the body was read. */
async function until(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await sleep(20);
}

type FetchLike = (url: string, init: { dispatcher: Pool | Agent }) => Promise<{ status: number; text(): Promise<string> }>;

async function fiftyAtOnce(fetchFn: FetchLike, dispatcher: Pool | Agent, path = '/orders?customer=42'): Promise<void> {
  const bodies = await Promise.all(Array.from({ length: 50 }, () => fetchFn(`${origin}${path}`, { dispatcher }).then((res) => res.text())));
  expect(bodies.every((b) => b === 'ok')).toBe(true);
}

/** What a queue of 50 behind 2 connections to a 100 ms origin looks like, with generous margins. */
function expectQueued(waits: OutboundWait[]): void {
  expect(waits).toHaveLength(50);
  // The origin only: no path, no query string.
  expect(new Set(waits.map((w) => w.origin))).toEqual(new Set([origin]));
  const seconds = waits.map((w) => w.seconds).sort((a, b) => a - b);
  const sum = seconds.reduce((a, b) => a + b, 0);
  // Request i waits about (i / 2) × 100 ms: 2.4 s for the last, 60 s in all.
  expect(sum).toBeGreaterThan(15);
  expect(seconds.at(-1)).toBeGreaterThan(1);
  // The first two had a connection at once (opening it took a few ms); nearly all others queued.
  expect(seconds.filter((s) => s >= 0.05).length).toBeGreaterThanOrEqual(40);
}

describe('outbound queueing', () => {
  it("Node's fetch through a Pool of 2 connections: 50 calls to a 100 ms origin are recorded with their queueing, by origin", async () => {
    const { waits } = monitored();
    await fiftyAtOnce(fetch as unknown as FetchLike, pool(origin));
    await until(() => waits.length >= 50);
    expectQueued(waits);
  }, 20_000);

  it("undici's fetch through a Pool of 2 connections: the same", async () => {
    const { waits } = monitored();
    await fiftyAtOnce(undiciFetch as unknown as FetchLike, pool(origin));
    await until(() => waits.length >= 50);
    expectQueued(waits);
  }, 20_000);

  it('an Agent with connections: 2 queues per origin alike', async () => {
    const { waits } = monitored();
    const agent = new Agent({ connections: 2 });
    stops.push(() => agent.close());
    await fiftyAtOnce(fetch as unknown as FetchLike, agent);
    await until(() => waits.length >= 50);
    expectQueued(waits);
  }, 20_000);

  it('without a connection limit nothing queues: the waits stay small', async () => {
    // Answers take 1 s: a request queued behind another would wait at least that long.
    const patient = await slowOrigin('127.0.0.1', 1000);
    const { waits } = monitored();
    const agent = new Agent();
    stops.push(() => agent.close());
    await Promise.all(
      Array.from({ length: 10 }, () => fetch(`${patient}/free`, { dispatcher: agent } as RequestInit).then((r) => r.text())),
    );
    await until(() => waits.length >= 10);
    expect(waits).toHaveLength(10);
    // Each opened its own connection at once (a loaded machine took up to 100 ms to open ten).
    for (const w of waits) expect(w.seconds).toBeLessThan(0.5);
  });

  it('origins past outbound.maxOrigins are counted under __other__', async () => {
    const other = await slowOrigin('localhost');
    const { waits } = monitored({ outbound: { maxOrigins: 1 } });
    await (await fetch(`${origin}/a`)).text();
    await until(() => waits.length >= 1);
    await (await fetch(`${other}/b`)).text();
    await (await fetch(`${origin}/c`)).text();
    await until(() => waits.length >= 3);
    expect(waits.map((w) => w.origin)).toEqual([origin, '__other__', origin]);
  });

  it('stop() unsubscribes: no observation after it, and the observer goes with the last monitor', async () => {
    const { monitor, waits } = monitored();
    expect(outboundObserving()).toBe(true);
    await (await fetch(`${origin}/before`)).text();
    await until(() => waits.length >= 1);
    expect(waits).toHaveLength(1);
    await monitor.stop();
    expect(outboundObserving()).toBe(false);
    await Promise.all(Array.from({ length: 5 }, () => fetch(`${origin}/after`).then((r) => r.text())));
    await sleep(300);
    expect(waits).toHaveLength(1);
    // Started again, it hears again.
    monitor.start();
    await (await fetch(`${origin}/again`)).text();
    await until(() => waits.length >= 2);
    expect(waits).toHaveLength(2);
  });

  it('outbound: false observes nothing', async () => {
    const { waits } = monitored({ outbound: false });
    expect(outboundObserving()).toBe(false);
    await (await fetch(`${origin}/off`)).text();
    await sleep(300);
    expect(waits).toHaveLength(0);
  });

  it('a throwing exporter is contained and warned once: fetch goes on working', async () => {
    const warned: string[] = [];
    const monitor = createMonitor({ loopLag: false, promises: false, logger: { warn: (m) => warned.push(m) } });
    const unsubscribe = subscribeOutbound(
      monitor,
      { name: 'broken', site: 'broken' },
      {
        wait() {
          throw new Error('boom');
        },
      },
    );
    monitor.start();
    stops.push(async () => {
      unsubscribe();
      await monitor.stop();
    });
    const bodies = await Promise.all(Array.from({ length: 3 }, () => fetch(`${origin}/x`).then((r) => r.text())));
    expect(bodies).toEqual(['ok', 'ok', 'ok']);
    await until(() => monitor.counters().internalErrors >= 3);
    expect(monitor.counters().internalErrors).toBe(3);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain('could not record an outbound wait');
    expect(warned[0]).toContain('LOOPSIGHT_EXPORTER_FAILED');
  });

  it('a runtime where the observer cannot start: warned once, start() goes on, fetch works', async () => {
    const observe = vi.spyOn(PerformanceObserver.prototype, 'observe').mockImplementation(() => {
      throw new TypeError('resource entries are not supported');
    });
    stops.push(async () => observe.mockRestore());
    const warned: string[] = [];
    const { monitor, waits } = monitored({ logger: { warn: (m) => warned.push(m) } });
    expect(monitor.running).toBe(true);
    expect(outboundObserving()).toBe(false);
    expect(await (await fetch(`${origin}/x`)).text()).toBe('ok');
    await sleep(200);
    expect(waits).toHaveLength(0);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain('fetch waits cannot be observed');
    expect(warned[0]).toContain('LOOPSIGHT_SHARED_PART_FAILED');
    // stop() has nothing to undo and does not throw either.
    await monitor.stop();
  });

  it('a process that fetched with a monitor running (never stopped) exits on its own', async () => {
    // The build, as an application loads it: the observer must not hold the loop open.
    const core = new URL('../dist/index.js', import.meta.url).href;
    const code = `
      const { createMonitor } = await import(${JSON.stringify(core)});
      const monitor = createMonitor({ onReport: () => {} });
      monitor.start();
      const res = await fetch(${JSON.stringify(`${origin}/exit`)});
      console.log(await res.text());
    `;
    const { stdout, exitCode } = await new Promise<{ stdout: string; exitCode: number | null }>((resolve) => {
      const child = execFile(process.execPath, ['--input-type=module', '-e', code], { timeout: 15_000 }, (_error, out) =>
        resolve({ stdout: out, exitCode: child.exitCode }),
      );
    });
    expect(stdout.trim()).toBe('ok');
    expect(exitCode).toBe(0);
  }, 20_000);

  it('validates its options with the option path', () => {
    const bad: [unknown, RegExp][] = [
      ['yes', /options\.outbound must be an object \{ maxOrigins\? \} or false/],
      [{ maxOrigins: 0 }, /options\.outbound\.maxOrigins/],
      [{ maxOrigins: 1.5 }, /options\.outbound\.maxOrigins/],
      [{ origins: 3 }, /outbound/],
    ];
    for (const [outbound, message] of bad) {
      expect(() => createMonitor({ outbound } as MonitorOptions)).toThrow(TypeError);
      expect(() => createMonitor({ outbound } as MonitorOptions)).toThrow(message);
      try {
        createMonitor({ outbound } as MonitorOptions);
      } catch (error) {
        expect((error as { code?: string }).code).toMatch(/^ERR_LOOPSIGHT_/);
      }
    }
  });
});
