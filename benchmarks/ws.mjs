// Per-message cost of @loopsight/ws against a hand-written AsyncLocalStorage wrapper of the same
// handler. Each configuration is a server process of its own; clients in this process keep a fixed
// window of messages in flight on each connection for a slice of time per configuration, the
// configurations alternating (rotated) every round. Per slice: messages/s, and server CPU per
// message (process.cpuUsage over the slice, all threads). Medians over the rounds, with an A/A
// control: a second process of the floor, whose difference from the first is the noise.
//
//   node ws.mjs                          # 12 rounds of 2 s slices (≈ 2 min), packages built
//   node ws.mjs --rounds 4 --slice 1000  # quicker

import { AsyncLocalStorage } from 'node:async_hooks';
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const VARIANTS = {
  'als-floor': 'hand-written AsyncLocalStorage wrapper (A)',
  'als-floor-2': 'the same, second process (A/A control)',
  loopsight: '@loopsight/ws, defaults',
  'loopsight-lean': '@loopsight/ws, loopLag: false, promises: false',
};

// The handler every configuration runs: reads the connection's id and answers.
function handler(ws, data, id) {
  ws.send(`${id.length}:${data.length}`);
}

async function serve(variant) {
  const { WebSocketServer } = await import('ws');
  const server = createServer();
  const wss = new WebSocketServer({ server });
  let messages = 0;
  if (variant.startsWith('als-floor')) {
    const als = new AsyncLocalStorage();
    wss.on('connection', (ws, req) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
      const path = (req.url ?? '/').split('?')[0];
      ws.on('message', (data) => {
        messages++;
        als.run({ correlationId: id, method: 'WS', route: path, startedAt: Date.now() }, () =>
          handler(ws, data, als.getStore().correlationId),
        );
      });
    });
  } else {
    const { loopsight } = await import('@loopsight/ws');
    const { getCorrelationId } = await import('@loopsight/context');
    const options = variant === 'loopsight-lean' ? { loopLag: false, promises: false } : {};
    loopsight(wss, { ...options, onReport: () => {} });
    wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        messages++;
        handler(ws, data, getCorrelationId());
      });
    });
  }
  server.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: server.address().port }));
  process.on('message', (m) => {
    if (m.type === 'sample') {
      const cpu = process.cpuUsage();
      process.send({ type: 'sample', cpuUs: cpu.user + cpu.system, messages });
    } else if (m.type === 'exit') process.exit(0);
  });
}

async function drive() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '12' },
      slice: { type: 'string', default: '2000' },
      connections: { type: 'string', default: '50' },
      window: { type: 'string', default: '8' },
    },
  });
  const rounds = Number(values.rounds);
  const sliceMs = Number(values.slice);
  const { WebSocket } = await import('ws');
  const names = Object.keys(VARIANTS);
  const servers = {};
  for (const name of names) {
    const child = fork(new URL(import.meta.url), ['--serve', name]);
    const port = await new Promise((resolve) => child.on('message', (m) => m.type === 'ready' && resolve(m.port)));
    const sample = () =>
      new Promise((resolve) => {
        child.once('message', resolve);
        child.send({ type: 'sample' });
      });
    servers[name] = { child, port, sample };
  }
  // Connections of every configuration stay open; only one configuration is driven at a time.
  const clients = {};
  for (const name of names) {
    clients[name] = await Promise.all(
      Array.from(
        { length: Number(values.connections) },
        (_, i) =>
          new Promise((resolve) => {
            const ws = new WebSocket(`ws://127.0.0.1:${servers[name].port}/bench`, { headers: { 'x-request-id': `bench-${i}` } });
            ws.once('open', () => resolve(ws));
          }),
      ),
    );
  }
  const payload = JSON.stringify({ type: 'say', text: 'hello' });
  async function slice(name) {
    let running = true;
    let done = 0;
    const loops = clients[name].map(
      (ws) =>
        new Promise((resolve) => {
          let inFlight = 0;
          const onMessage = () => {
            done++;
            inFlight--;
            if (running) {
              inFlight++;
              ws.send(payload);
            } else if (inFlight === 0) {
              ws.off('message', onMessage);
              resolve();
            }
          };
          ws.on('message', onMessage);
          for (let i = 0; i < Number(values.window); i++) {
            inFlight++;
            ws.send(payload);
          }
        }),
    );
    const before = await servers[name].sample();
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, sliceMs));
    const after = await servers[name].sample();
    const seconds = (performance.now() - t0) / 1000;
    running = false;
    await Promise.all(loops);
    const messages = after.messages - before.messages;
    return { rate: messages / seconds, cpuPerMessageUs: (after.cpuUs - before.cpuUs) / messages, done };
  }
  const results = Object.fromEntries(names.map((n) => [n, { rate: [], cpu: [] }]));
  // Warm-up: one slice each, not counted.
  for (const name of names) await slice(name);
  for (let round = 0; round < rounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const name of order) {
      const r = await slice(name);
      results[name].rate.push(r.rate);
      results[name].cpu.push(r.cpuPerMessageUs);
    }
    process.stderr.write(`round ${round + 1}/${rounds}\n`);
  }
  for (const name of names) {
    for (const ws of clients[name]) ws.terminate();
    servers[name].child.send({ type: 'exit' });
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
  const base = { rate: median(results['als-floor'].rate), cpu: median(results['als-floor'].cpu) };
  const pct = (v, b) => `${v >= b ? '+' : ''}${(((v - b) / b) * 100).toFixed(1)} %`;
  console.log(
    `\n@loopsight/ws per message, Node ${process.versions.node}, ${rounds} rounds × ${sliceMs} ms per configuration, ${values.connections} connections × ${values.window} in flight\n`,
  );
  console.log('| configuration | messages/s (median) | vs A | p25–p75 | server CPU µs/message (median) | vs A | p25–p75 |');
  console.log('|---|---:|---:|---|---:|---:|---|');
  for (const name of names) {
    const { rate, cpu } = results[name];
    const r = median(rate);
    const c = median(cpu);
    const first = name === 'als-floor';
    console.log(
      `| ${VARIANTS[name]} | ${r.toFixed(0)} | ${first ? '' : pct(r, base.rate)} | ${quantile(rate, 0.25).toFixed(0)}–${quantile(rate, 0.75).toFixed(0)} | ${c.toFixed(2)} | ${first ? '' : pct(c, base.cpu)} | ${quantile(cpu, 0.25).toFixed(2)}–${quantile(cpu, 0.75).toFixed(2)} |`,
    );
  }
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt !== -1) await serve(process.argv[serveAt + 1]);
else await drive();
