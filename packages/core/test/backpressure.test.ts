import diagnosticsChannel from 'node:diagnostics_channel';
import http, { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type BackpressureReport, CHANNELS, createMonitor, type Monitor, type MonitorOptions } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { TOTAL_BYTES, writeIgnoring } from '../../../test-support/backpressure.js';
import { HttpScope, trackRequest } from '../src/request.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A node:http server whose requests go through core's request path, writing 64 MB while ignoring write()'s false. */
async function serve(monitor: Monitor): Promise<string> {
  monitor.start();
  const server = http.createServer((req, res) =>
    trackRequest(new HttpScope(internals(monitor), 'flood', req, () => '/flood', req), req, res, () => writeIgnoring(res)),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await monitor.stop();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

// Slow consumers apart: a loaded machine can take longer than 5 s to read 64 MB.
/**
 * One connection per response: a kept-alive socket reused after a 64 MB response can meet the server's
 * idle timeout on a starved machine (ECONNRESET, Node 26 under CI load).
 */
const get = (url: string) => request(url, { reset: true });

const quiet = { loopLag: false, promises: false, backpressure: { slowConsumerMs: 600_000 } } satisfies MonitorOptions;

describe('backpressure', () => {
  it("publishes an 'ignored' report on the monitor, on diagnostics_channel and to onReport", async () => {
    const sunk: unknown[] = [];
    const heard: BackpressureReport[] = [];
    const published: unknown[] = [];
    const onPublish = (message: unknown) => published.push(message);
    diagnosticsChannel.subscribe(CHANNELS.backpressure, onPublish);
    cleanups.push(() => diagnosticsChannel.unsubscribe(CHANNELS.backpressure, onPublish));
    const monitor = createMonitor({ ...quiet, onReport: (r) => sunk.push(r) });
    monitor.on('backpressure', (r) => heard.push(r));
    const url = await serve(monitor);
    const res = await get(url);
    expect((await res.body.arrayBuffer()).byteLength).toBe(TOTAL_BYTES);
    expect(heard).toHaveLength(1);
    expect(sunk).toEqual(heard);
    expect(published).toEqual(heard);
    expect(heard[0]).toMatchObject({
      type: 'backpressure',
      kind: 'ignored',
      request: { correlationId: 'flood', route: '/flood' },
      suppressed: 0,
    });
  });

  it('limits reports to one per site and kind a minute, counting the rest', async () => {
    const heard: BackpressureReport[] = [];
    const monitor = createMonitor({ ...quiet, onReport: () => {} });
    monitor.on('backpressure', (r) => heard.push(r));
    const url = await serve(monitor);
    for (let i = 0; i < 3; i++) await (await get(url)).body.arrayBuffer();
    expect(heard).toHaveLength(1);
    expect(monitor.counters().backpressure).toMatchObject({ reported: { ignored: 1, slowConsumer: 0 }, suppressed: 2 });
  });

  it('lets every response complete when the watch, a listener and onReport throw (fault injection)', async () => {
    const warnings: string[] = [];
    const monitor = createMonitor({
      ...quiet,
      logger: { warn: (m) => warnings.push(m) },
      onReport: () => {
        throw new Error('sink down');
      },
    });
    monitor.on('backpressure', () => {
      throw new Error('listener down');
    });
    const url = await serve(monitor);
    // The first response: the listener and onReport throw.
    expect((await (await get(url)).body.arrayBuffer()).byteLength).toBe(TOTAL_BYTES);
    // Then the watch itself throws on every write told to wait.
    const watch = internals(monitor).backpressure as { pressed: unknown };
    watch.pressed = () => {
      throw new Error('watch down');
    };
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    cleanups.push(() => process.off('uncaughtException', onUncaught));
    const sizes = await Promise.all([1, 2, 3].map(async () => (await (await get(url)).body.arrayBuffer()).byteLength));
    expect(sizes).toEqual([TOTAL_BYTES, TOTAL_BYTES, TOTAL_BYTES]);
    expect(uncaught).toEqual([]);
    expect(monitor.counters().internalErrors).toBeGreaterThanOrEqual(2);
    expect(warnings.join('\n')).toMatch(/'backpressure' listener threw: listener down/);
    expect(warnings.join('\n')).toMatch(/onReport threw: sink down/);
  });

  it('patches ServerResponse.prototype.write once for any number of monitors, and stop() of the last one restores it', async () => {
    const original = ServerResponse.prototype.write;
    const a = createMonitor(quiet);
    const b = createMonitor(quiet);
    a.start();
    b.start();
    const patched = ServerResponse.prototype.write;
    expect(patched).not.toBe(original);
    await a.stop();
    expect(ServerResponse.prototype.write).toBe(patched);
    await b.stop();
    expect(ServerResponse.prototype.write).toBe(original);
    // Off: no patch at all.
    const off = createMonitor({ loopLag: false, promises: false, backpressure: false });
    off.start();
    expect(ServerResponse.prototype.write).toBe(original);
    expect(off.counters().backpressure).toBeUndefined();
    await off.stop();
  });

  it('validates its options with stable codes', () => {
    const code = (backpressure: unknown) => {
      try {
        createMonitor({ backpressure } as MonitorOptions);
        return 'ok';
      } catch (error) {
        return `${(error as { code?: string }).code}: ${(error as Error).message}`;
      }
    };
    expect(code({ highWaterMarks: 4, minBytes: 65_536, slowConsumerMs: 100, maxTracked: 10 })).toBe('ok');
    expect(code(false)).toBe('ok');
    expect(code(true)).toMatch(/^ERR_LOOPSIGHT_INVALID_OPTION: .*backpressure/);
    expect(code({ highWaterMarks: 1 })).toMatch(/^ERR_LOOPSIGHT_INVALID_OPTION: .*backpressure\.highWaterMarks/);
    expect(code({ minBytes: -1 })).toMatch(/^ERR_LOOPSIGHT_INVALID_OPTION: .*backpressure\.minBytes/);
    expect(code({ slowConsumerMs: 0 })).toMatch(/^ERR_LOOPSIGHT_INVALID_OPTION: .*backpressure\.slowConsumerMs/);
    expect(code({ maxTracked: 1.5 })).toMatch(/^ERR_LOOPSIGHT_INVALID_OPTION: .*backpressure\.maxTracked/);
    expect(code({ slowConsumer: 5 })).toMatch(/^ERR_LOOPSIGHT_UNKNOWN_OPTION: .*backpressure\.slowConsumer/);
  });

  it('watches at most maxTracked writers at once, counting the others', async () => {
    const monitor = createMonitor({ ...quiet, onReport: () => {}, backpressure: { maxTracked: 1, slowConsumerMs: 600_000 } });
    const url = await serve(monitor);
    await Promise.all([1, 2, 3].map(async () => (await get(url)).body.arrayBuffer()));
    expect(monitor.counters().backpressure?.dropped).toBeGreaterThan(0);
  });
});

it('does not watch a response written to after its client went away', async () => {
  const monitor = createMonitor({ ...quiet, onReport: () => {} });
  monitor.start();
  const gone = new Promise<ServerResponse>((resolve) => {
    const server = http.createServer((req, res) =>
      trackRequest(new HttpScope(internals(monitor), 'gone', req, () => '/gone', req), req, res, () => {
        res.write('first');
        res.on('close', () => resolve(res));
      }),
    );
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      const client = request(`http://127.0.0.1:${port}/`);
      void client.then((r) => r.body.destroy()).catch(() => {});
    });
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await monitor.stop();
    });
  });
  const res = await gone;
  res.on('error', () => {});
  for (let i = 0; i < 10; i++) res.write(Buffer.alloc(1024));
  expect(monitor.counters().backpressure).toMatchObject({ waiting: 0, dropped: 0 });
});
