// What loopsight assumes of the Node version it runs on, checked on that version rather than taken
// on trust: CI runs this file on every Node line it supports (the full suite on 24 and 26,
// test:subset on 20 and 22). A new Node major that changes one of these fails here first, naming it.
import { spawnSync } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);

/** Runs a snippet in a fresh `node` with the given flags (none from this process's NODE_OPTIONS); returns its stdout. */
function probe(flags: string[], code: string): string {
  const env = { ...process.env, NODE_OPTIONS: '' };
  const child = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', code], { encoding: 'utf8', env, timeout: 20_000 });
  expect(child.stderr).toBe('');
  return child.stdout.trim();
}

// AsyncContextFrame: AsyncLocalStorage keeps its store in a frame captured when a resource is made,
// so `enterWith()` inside `runInAsyncScope()` does not outlive that call. Under async_hooks the store
// sits on the resource and the next `runInAsyncScope()` sees it. docs/preload.md (how the scope
// reaches the handler) depends on which of the two runs.
const ACF_PROBE = `
  import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
  const als = new AsyncLocalStorage();
  const resource = new AsyncResource('probe');
  resource.runInAsyncScope(() => als.enterWith('entered'));
  console.log(resource.runInAsyncScope(() => als.getStore()) === undefined ? 'frame' : 'hooks');
`;

describe(`Node ${process.versions.node}`, () => {
  it('AsyncLocalStorage runs on AsyncContextFrame from Node 24 on, on async_hooks before', () => {
    expect(probe([], ACF_PROBE)).toBe(major >= 24 ? 'frame' : 'hooks');
    // And the flags that switch it are the ones docs/preload.md names.
    if (major >= 24) expect(probe(['--no-async-context-frame'], ACF_PROBE)).toBe('hooks');
    if (major === 22) expect(probe(['--experimental-async-context-frame'], ACF_PROBE)).toBe('frame');
  });

  it('tells a worker its name (worker_threads.threadName) from Node 22.20 and 24.6 on, not before', async () => {
    const expected = major >= 25 || (major === 24 && minor >= 6) || (major === 22 && minor >= 20);
    expect('threadName' in (await import('node:worker_threads'))).toBe(expected);
  });

  it('publishes http.client.request.created from Node 23 on, and not on Node 20 (@loopsight/context wraps http.request before 23)', async () => {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const seen: string[] = [];
    const onCreated = () => seen.push('created');
    subscribe('http.client.request.created', onCreated);
    try {
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve, reject) => {
        request({ host: '127.0.0.1', port, path: '/' }, (res) => res.resume().on('end', resolve))
          .on('error', reject)
          .end();
      });
    } finally {
      unsubscribe('http.client.request.created', onCreated);
      await new Promise((resolve) => server.close(resolve));
    }
    // Node 22 has it too since a backport (22.23 does); @loopsight/context still wraps there, harmlessly:
    // whichever of the wrapper and the channel runs first sets the header.
    if (major >= 23) expect(seen).toEqual(['created']);
    if (major <= 20) expect(seen).toEqual([]);
  });

  // A watched worker talks to the watchdog thread over a BroadcastChannel: from Node 22 on, the first
  // message a channel delivers in a worker builds undici's MessageEvent, loading undici there: a
  // stall of its own at the worker's start on a loaded machine (docs/loop-lag.md, docs/runtimes.md).
  it('loads undici (MessageEvent) at the first BroadcastChannel message in a worker from Node 22 on, not on Node 20', () => {
    const out = probe(
      [],
      `
      import { BroadcastChannel, Worker } from 'node:worker_threads';
      const worker = new Worker(\`
        const { BroadcastChannel, parentPort } = require('node:worker_threads');
        const undici = () => process.moduleLoadList.some((m) => m.includes('internal/deps/undici'));
        const channel = new BroadcastChannel('runtime-probe');
        const before = undici();
        channel.onmessage = () => { parentPort.postMessage({ before, after: undici() }); channel.close(); };
        parentPort.postMessage('ready');
      \`, { eval: true, execArgv: [] });
      const channel = new BroadcastChannel('runtime-probe');
      worker.on('message', (m) => {
        if (m === 'ready') return channel.postMessage('first');
        console.log(JSON.stringify(m));
        channel.close();
        worker.terminate();
      });
    `,
    );
    expect(JSON.parse(out)).toEqual({ before: false, after: major >= 22 });
  });
});
