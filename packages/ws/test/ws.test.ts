import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getCorrelationId } from '@loopsight/context';
import { createMonitor, currentScope, type Monitor, type RequestRecord } from '@loopsight/core';
import { internals } from '@loopsight/core/adapter';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { prometheusExporter } from '@loopsight/prometheus';
import { loopsight } from '@loopsight/ws';
import express from 'express';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { until } from '../../../test-support/until.js';
import { type Client, connect, sleep, typeOf } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const quiet = { loopLag: false, promises: false, onReport: () => {} } as const;

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** A ws server on an HTTP server of its own, answering each message with what its listener saw. */
async function start(options: Parameters<typeof loopsight>[1] = quiet) {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  const monitor = loopsight(wss, options);
  const records: RequestRecord[] = [];
  monitor.on('request', (r) => records.push(r));
  wss.on('connection', (ws) => {
    ws.on('message', (data) => ws.send(JSON.stringify({ id: getCorrelationId(), scope: currentScope(), got: String(data) })));
  });
  const host = await listen(server);
  const clients: Client[] = [];
  cleanups.push(async () => {
    await Promise.all(clients.map((c) => c.close()));
    wss.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await monitor.stop();
  });
  return {
    wss,
    monitor,
    records,
    async connect(path = '/chat', headers: Record<string, string> = {}) {
      const client = await connect(`ws://${host}${path}`, headers);
      clients.push(client);
      return client;
    },
  };
}

describe('@loopsight/ws', () => {
  it("runs each message's listeners in the connection's scope, with the upgrade request's id echoed in the handshake", async () => {
    const app = await start();
    const a = await app.connect('/chat?room=1', { 'x-request-id': 'conn-a' });
    const b = await app.connect('/chat');
    expect(a.handshake['x-request-id']).toBe('conn-a');
    expect(b.handshake['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const [ra, rb, ra2] = await Promise.all([a.ask('one'), b.ask('two'), a.ask('three')]);
    expect(ra).toMatchObject({ id: 'conn-a', scope: { correlationId: 'conn-a', method: 'WS', route: '/chat' } });
    expect(rb).toMatchObject({ id: b.handshake['x-request-id'], scope: { method: 'WS', route: '/chat' } });
    expect(ra2).toMatchObject({ id: 'conn-a' });
    // One 'request' record per message; the query string never becomes a route.
    await until(() => app.records.length === 3);
    expect(app.records.map((r) => [r.method, r.route, r.correlationId, r.aborted])).toEqual(
      expect.arrayContaining([
        ['WS', '/chat', 'conn-a', false],
        ['WS', '/chat', b.handshake['x-request-id'], false],
      ]),
    );
    expect(app.monitor.inflight()).toEqual([]);
  });

  it('names messages with messageName; an async listener is timed until its promise settles, a rejection is counted as aborted', async () => {
    const server = createServer();
    const wss = new WebSocketServer({ server });
    const monitor = loopsight(wss, { ...quiet, messageName: typeOf });
    const records: RequestRecord[] = [];
    monitor.on('request', (r) => records.push(r));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    wss.on('connection', (ws) => {
      ws.on('message', async (data) => {
        const type = typeOf(data);
        await sleep(80);
        if (type === 'fail') throw new Error('handler failed');
        ws.send(JSON.stringify({ id: getCorrelationId(), route: currentScope()?.route }));
      });
    });
    const host = await listen(server);
    const client = await connect(`ws://${host}/`, { 'x-request-id': 'async-1' });
    cleanups.push(async () => {
      process.off('unhandledRejection', onUnhandled);
      await client.close();
      wss.close();
      await new Promise((resolve) => server.close(resolve));
      await monitor.stop();
    });
    expect(await client.ask({ type: 'join' })).toEqual({ id: 'async-1', route: 'join' });
    client.ws.send(JSON.stringify({ type: 'fail' }));
    await until(() => records.length === 2 && unhandled.length === 1);
    expect(records[0]).toMatchObject({ route: 'join', method: 'WS', correlationId: 'async-1', aborted: false });
    expect(records[0]?.durationMs).toBeGreaterThanOrEqual(70);
    expect(records[1]).toMatchObject({ route: 'fail', aborted: true });
    // The application still hears of its rejection, as without loopsight.
    expect(unhandled).toEqual([expect.objectContaining({ message: 'handler failed' })]);
  });

  it('a hostile id in the upgrade request is replaced and counted, never reflected', async () => {
    const app = await start();
    const hostile = '<script>alert(1)</script>';
    const client = await app.connect('/chat', { 'x-request-id': hostile });
    const echoed = client.handshake['x-request-id'];
    expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
    const raw = await new Promise<string[]>((resolve) => {
      const ws = new WebSocket(`${client.ws.url}`, { headers: { 'x-request-id': `${'a'.repeat(300)}` } });
      ws.once('upgrade', (res: IncomingMessage) => resolve(res.rawHeaders));
      cleanups.push(() => ws.terminate());
    });
    expect(raw.join('\n')).not.toContain('aaaa');
    expect(await client.ask('hi')).toMatchObject({ id: echoed });
    expect(JSON.stringify(app.records)).not.toContain('script');
    expect(app.monitor.counters().correlationIdsRejected).toMatchObject({ invalid: 1, too_long: 1 });
  });

  it("every way of adding a 'message' listener runs in the scope, and the user's function still removes it", async () => {
    const server = createServer();
    const wss = new WebSocketServer({ server });
    const monitor = loopsight(wss, quiet);
    const seen: string[] = [];
    const removed = { on: 0, once: 0, off: 0 };
    wss.on('connection', (ws) => {
      const record = (how: string) => () => seen.push(`${how}:${getCorrelationId()}`);
      ws.on('message', record('on'));
      ws.addListener('message', record('addListener'));
      ws.prependListener('message', record('prepend'));
      ws.once('message', record('once'));
      ws.onmessage = () => seen.push(`onmessage:${getCorrelationId()}`);
      ws.addEventListener('message', () => seen.push(`addEventListener:${getCorrelationId()}`));
      const gone = () => removed.on++;
      const goneOnce = () => removed.once++;
      const goneOff = () => removed.off++;
      ws.on('message', gone);
      ws.once('message', goneOnce);
      ws.on('message', goneOff);
      ws.removeListener('message', gone);
      ws.removeListener('message', goneOnce);
      ws.off('message', goneOff);
    });
    const host = await listen(server);
    const client = await connect(`ws://${host}/`, { 'x-request-id': 'listeners-1' });
    cleanups.push(async () => {
      await client.close();
      wss.close();
      await new Promise((resolve) => server.close(resolve));
      await monitor.stop();
    });
    client.ws.send('1');
    client.ws.send('2');
    await until(() => seen.length === 11);
    expect(seen.sort()).toEqual(
      [
        'addEventListener',
        'addEventListener',
        'addListener',
        'addListener',
        'on',
        'on',
        'once',
        'onmessage',
        'onmessage',
        'prepend',
        'prepend',
      ].map((how) => `${how}:listeners-1`),
    );
    expect(removed).toEqual({ on: 0, once: 0, off: 0 });
  });

  it('bounds message kinds: 200 kinds beyond the cap are __other__; a throwing or non-string messageName names the message by its path, warned once', async () => {
    const warnings: string[] = [];
    const logger = { warn: (line: string) => warnings.push(line), info: () => {}, error: () => {} };
    const app = await start({
      ...quiet,
      logger,
      messageName: (data) => {
        const text = JSON.parse(String(data)) as string;
        if (text === 'throw') throw new Error('bad message');
        if (text === 'number') return 42 as unknown as string;
        return text;
      },
    });
    const client = await app.connect('/kinds');
    for (let i = 0; i < 300; i++) await client.ask(`kind-${i}`);
    await client.ask('throw');
    await client.ask('throw');
    await client.ask('number');
    await until(() => app.records.length === 303);
    const routes = app.records.map((r) => r.route);
    expect(routes.slice(0, 100)).toEqual(Array.from({ length: 100 }, (_, i) => `kind-${i}`));
    expect(routes.slice(100, 300).every((r) => r === '__other__')).toBe(true);
    // The path shares the cap: first seen past it, it is __other__ too.
    expect(routes.slice(300)).toEqual(['__other__', '__other__', '__other__']);
    expect(warnings.filter((w) => w.includes('messageName'))).toHaveLength(1);
    expect(warnings.join('\n')).not.toContain('bad message\n');
  });

  it('counts connections opened, closed and open, in counters() and in the Prometheus exporter', async () => {
    const registry = new Registry();
    const monitor = createMonitor({ ...quiet, exporters: [prometheusExporter({ registry })] });
    monitor.start();
    // Started before the adapter: the connection metrics appear once it is mounted.
    expect(await registry.metrics()).not.toContain('connections_open');
    const app = await start({ monitor });
    const clients = await Promise.all([app.connect(), app.connect(), app.connect()]);
    await clients[0]?.close();
    await until(() => monitor.counters().connections?.closed === 1);
    expect(monitor.counters().connections).toEqual({ opened: 3, closed: 1, open: 2 });
    const text = await registry.metrics();
    expect(text).toContain('# TYPE loopsight_connections_open gauge');
    expect(text).toContain('loopsight_connections_open 2');
    expect(text).toContain('loopsight_connections_opened_total 3');
    expect(text).toContain('loopsight_connections_closed_total 1');
    cleanups.push(() => monitor.stop());
  });

  it('monitor.stop() releases the server and its sockets: messages then run unscoped, and a wss of its own stops its monitor on close', async () => {
    const app = await start();
    const client = await app.connect('/chat', { 'x-request-id': 'before-stop' });
    expect(await client.ask('a')).toMatchObject({ id: 'before-stop' });
    await app.monitor.stop();
    const [socket] = [...app.wss.clients];
    expect(Object.hasOwn(socket as object, 'emit')).toBe(false);
    expect(await client.ask('b')).toEqual({ got: '"b"' });
    app.monitor.start();
    // Started again: new connections are instrumented again.
    const again = await app.connect('/chat', { 'x-request-id': 'after-restart' });
    expect(await again.ask('c')).toMatchObject({ id: 'after-restart' });
  });

  it('a server closing lets go of a shared monitor, which goes on: 50 servers opened and closed leave no component on it', async () => {
    const monitor = createMonitor(quiet);
    monitor.start();
    cleanups.push(() => monitor.stop());
    const handle = internals(monitor);
    const detached: string[] = [];
    const detach = handle.detach;
    handle.detach = (component) => {
      detached.push(component.name);
      detach(component);
    };
    for (let i = 0; i < 50; i++) {
      const wss = new WebSocketServer({ noServer: true });
      loopsight(wss, { monitor });
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
    expect(detached).toHaveLength(50);
    expect(new Set(detached).size).toBe(50);
    expect(monitor.running).toBe(true);
  });

  it('with clientTracking: false, monitor.stop() still ends the scopes: the patched methods pass straight through', async () => {
    const server = createServer();
    const wss = new WebSocketServer({ server, clientTracking: false });
    const monitor = loopsight(wss, quiet);
    wss.on('connection', (ws) => ws.on('message', () => ws.send(JSON.stringify({ id: getCorrelationId() ?? null }))));
    const host = await listen(server);
    const client = await connect(`ws://${host}/`, { 'x-request-id': 'untracked-1' });
    cleanups.push(async () => {
      await client.close();
      wss.close();
      await new Promise((resolve) => server.close(resolve));
    });
    expect(await client.ask('a')).toEqual({ id: 'untracked-1' });
    await monitor.stop();
    expect(await client.ask('b')).toEqual({ id: null });
  });

  it('validates its options at construction, naming the option', () => {
    const wss = new WebSocketServer({ noServer: true });
    expect(() => loopsight(wss, { messageName: 5 as never })).toThrow(/options\.messageName must be a function/);
    expect(() => loopsight(wss, { maxMessageNames: 0 })).toThrow(/options\.maxMessageNames must be a positive integer up to 100000/);
    expect(() => loopsight({} as never)).toThrow(/wss must be a ws WebSocketServer/);
    expect(() => loopsight(wss, { loopLag: { stallThresholdMs: -1 } })).toThrow(/stallThresholdMs/);
  });
});

describe('server kinds', () => {
  async function roundTrip(url: string, id: string) {
    const client = await connect(url, { 'x-request-id': id });
    cleanups.push(() => client.close());
    expect(client.handshake['x-request-id']).toBe(id);
    return client.ask({ type: 'ping' });
  }

  it('{ port }: a server of its own', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => wss.once('listening', resolve));
    const monitor = loopsight(wss, { ...quiet, messageName: typeOf });
    wss.on('connection', (ws) => ws.on('message', () => ws.send(JSON.stringify({ id: getCorrelationId(), route: currentScope()?.route }))));
    cleanups.push(async () => {
      await new Promise((resolve) => wss.close(resolve));
      // A monitor the adapter made goes with its server.
      expect((monitor as Monitor & { running: boolean }).running).toBe(false);
    });
    const { port } = wss.address() as AddressInfo;
    expect(await roundTrip(`ws://127.0.0.1:${port}/`, 'own-port')).toEqual({ id: 'own-port', route: 'ping' });
  });

  it.each(['{ noServer: true } + handleUpgrade', '{ server }'])(
    '%s beside @loopsight/express on the same port, one monitor: each gets its own id',
    async (mode) => {
      const monitor = createMonitor(quiet);
      const app = express();
      app.use(expressLoopsight({ monitor }));
      app.get('/users/:id', (_req, res) => res.json({ id: getCorrelationId(), route: currentScope()?.route }));
      const server = createServer(app);
      let wss: WebSocketServer;
      if (mode === '{ server }') wss = new WebSocketServer({ server });
      else {
        const own = new WebSocketServer({ noServer: true });
        server.on('upgrade', (req, socket, head) => {
          own.handleUpgrade(req, socket, head, (ws) => own.emit('connection', ws, req));
        });
        wss = own;
      }
      loopsight(wss, { monitor, messageName: typeOf });
      wss.on('connection', (ws) =>
        ws.on('message', () => ws.send(JSON.stringify({ id: getCorrelationId(), route: currentScope()?.route }))),
      );
      const host = await listen(server);
      const records: RequestRecord[] = [];
      monitor.on('request', (r) => records.push(r));
      cleanups.push(async () => {
        wss.close();
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await monitor.stop();
      });
      const [http, ws] = await Promise.all([
        fetch(`http://${host}/users/7`, { headers: { 'x-request-id': 'http-1' } }),
        roundTrip(`ws://${host}/live`, 'upgrade-1'),
      ]);
      expect(http.headers.get('x-request-id')).toBe('http-1');
      expect(await http.json()).toEqual({ id: 'http-1', route: '/users/:id' });
      expect(ws).toEqual({ id: 'upgrade-1', route: 'ping' });
      await until(() => records.length === 2);
      expect(records.map((r) => [r.method, r.route, r.correlationId]).sort()).toEqual([
        ['GET', '/users/:id', 'http-1'],
        ['WS', 'ping', 'upgrade-1'],
      ]);
    },
  );
});
