// A chat served by two processes over Redis pub/sub, with loopsight on each: a few scripted
// clients talk across them, one message kind blocks the loop, one floats a promise, and the
// output shows what loopsight saw. `node index.js` (or `--short`, CHAT_SHORT=1: fewer messages).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { startRedis } from '../start-redis.mjs';

const short = process.argv.includes('--short') || process.env.CHAT_SHORT === '1';
const ROUNDS = short ? 2 : 10;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A private redis-server unless REDIS_URL names one.
const redis = process.env.REDIS_URL ? undefined : await startRedis();
const REDIS_URL = process.env.REDIS_URL ?? redis.url;

const seen = { request: [], report: [], connections: {} };
function startServer(name) {
  const child = fork(fileURLToPath(new URL('./server.js', import.meta.url)), {
    env: { ...process.env, REDIS_URL, CHAT_SERVER: name },
  });
  const ready = new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`chat server ${name} exited (${code})`)));
    child.on('message', (message) => {
      if (message.type === 'ready') resolve(message.port);
      else if (message.type === 'connections') seen.connections[name] = message.connections;
      else seen[message.type]?.push({ server: name, ...message });
    });
  });
  return { name, child, ready, exited: new Promise((resolve) => child.once('exit', resolve)) };
}

/** A scripted client: connects with an optional id, keeps what it receives. */
function client(name, port, id) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/room/lobby`, { headers: id ? { 'x-request-id': id } : {} });
    const received = [];
    let echoed;
    ws.once('upgrade', (res) => {
      echoed = res.headers['x-request-id'];
    });
    ws.on('message', (data) => received.push(JSON.parse(String(data))));
    ws.once('error', reject);
    ws.once('open', () => resolve({ name, ws, received, id: echoed, send: (message) => ws.send(JSON.stringify(message)) }));
  });
}

async function waitFor(check, ms = 5_000) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (check()) return true;
  return false;
}

const a = startServer('A');
const b = startServer('B');
const [portA, portB] = await Promise.all([a.ready, b.ready]);
// The watchdog's thread takes a moment to come up; a block before then would be timed by no one.
await sleep(300);

console.log(
  `loopsight chat example${short ? ' (short)' : ''}: two ws servers over Redis pub/sub (${redis ? 'a private redis-server' : REDIS_URL})\n`,
);
const clientsFrom = Date.now();
const alice = await client('alice', portA, 'alice-7f3a');
const bob = await client('bob', portB, 'bob-91c2');
const carol = await client('carol', portA, '<script>alert(1)</script>');
console.log('Clients (server, and the connection id the handshake echoed):');
for (const [c, server] of [
  [alice, 'A'],
  [bob, 'B'],
  [carol, 'A'],
]) {
  console.log(`  ${c.name.padEnd(6)} on ${server}  x-request-id: ${c.id}`);
}

for (let i = 0; i < ROUNDS; i++) {
  alice.send({ type: 'say', text: `hello ${i} from alice` });
  bob.send({ type: 'say', text: `hi ${i} from bob` });
}
await waitFor(() => bob.received.filter((m) => m.type === 'said').length >= 2 * ROUNDS);
const fromAlice = bob.received.find((m) => m.type === 'said' && m.via === 'A');
console.log(`\nbob (on B) received "${fromAlice?.text}" via Redis from A, sent with id ${fromAlice?.id}`);

const blockSent = Date.now();
carol.send({ type: 'history' });
bob.send({ type: 'typing', from: 'bob' });
await waitFor(() => carol.received.some((m) => m.type === 'history') && bob.received.some((m) => m.type === 'typing-ok'));
// The stall report comes from the watchdog thread once the loop runs again, the floating promise's
// once its message's scope has ended: wait for both (at most 5 s).
const reports = () => seen.report.map((m) => ({ server: m.server, ...m.report }));
await waitFor(
  () => reports().some((r) => r.type === 'stall' && r.at >= blockSent - 100 && r.request) && reports().some((r) => r.type === 'promise'),
);

for (const c of [alice, bob, carol]) c.ws.close();
await sleep(100);
for (const server of [a, b]) server.child.send({ type: 'stop' });
await Promise.all([a.exited, b.exited]);
await redis?.close();

console.log("\nWhat loopsight saw ('request' events per message: server, method, message kind, time in the handler, connection id):");
const byKind = new Map();
for (const { server, record: r } of seen.request) {
  const key = `${server} ${r.route} ${r.correlationId}`;
  const entry = byKind.get(key) ?? { server, r, n: 0, ms: 0 };
  entry.n++;
  entry.ms = Math.max(entry.ms, r.durationMs);
  byKind.set(key, entry);
}
for (const { server, r, n, ms } of byKind.values()) {
  console.log(
    `  ${server}  ${r.method} ${r.route.padEnd(8)} ×${String(n).padEnd(3)} max ${ms.toFixed(1).padStart(6)} ms  ${r.correlationId}`,
  );
}

const where = (f) =>
  `${f.functionName || '(anonymous)'} (${f.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '')}:${f.line}:${f.column})`;
console.log('\nStall reports (the loop was blocked: by what, in which message of which connection):');
for (const r of reports().filter((report) => report.type === 'stall')) {
  // Before the first client: the server process starting (its Redis connections), no message to blame.
  const outside = r.at < clientsFrom ? 'no message (the server starting, before any client)' : 'no message in flight';
  const who = r.request ? `${r.request.method} ${r.request.route}  id ${r.request.correlationId}` : outside;
  console.log(`  ${r.server}  ${r.durationMs.toFixed(0)} ms  ${who}  (stack: ${r.stackSource})`);
  if (r.culprit) console.log(`      culprit ${where(r.culprit)}`);
}
console.log('\nPromise reports (floating: never awaited):');
for (const r of reports().filter((report) => report.type === 'promise')) {
  const who = r.request ? `${r.request.method} ${r.request.route}  id ${r.request.correlationId}` : 'no message';
  console.log(`  ${r.server}  ${r.kind}  ${who}`);
  if (r.culprit) console.log(`      culprit ${where(r.culprit)}`);
}
console.log('\nConnections (opened / closed / open when the servers stopped):');
for (const [server, c] of Object.entries(seen.connections).sort()) console.log(`  ${server}  ${c?.opened} / ${c?.closed} / ${c?.open}`);
