// One chat server process: ws on an HTTP server of its own, messages fanned out to every server
// through Redis pub/sub. Started twice by index.js; reports what loopsight saw to its parent.
import http from 'node:http';
import { getCorrelationId } from '@loopsight/context';
import { loopsight } from '@loopsight/ws';
import { Redis } from 'ioredis';
import { WebSocketServer } from 'ws';

const NAME = process.env.CHAT_SERVER ?? 'chat';
const send = (message) => process.send?.(message);

/** Renders the room's history: blocks the event loop, the kind of handler loopsight exists to find. */
function renderHistory(ms) {
  const end = performance.now() + ms;
  let lines = 0;
  while (performance.now() < end) lines++;
  return lines;
}

/** Tells the room someone is typing. */
async function notifyTyping(pub, who) {
  await new Promise((resolve) => setTimeout(resolve, 20));
  await pub.publish('typing', who);
}

const pub = new Redis(process.env.REDIS_URL);
const sub = new Redis(process.env.REDIS_URL);
const server = http.createServer();
const wss = new WebSocketServer({ server });
const monitor = loopsight(wss, {
  // The message's JSON `type` is its kind: the scope's route, the label of its reports.
  messageName: (data) => JSON.parse(String(data)).type,
  // Promise tracking in full mode, as in development and CI; production samples (the default).
  promises: { mode: 'full' },
  onReport: (report) => send({ type: 'report', server: NAME, report }),
});
monitor.on('request', (record) => send({ type: 'request', server: NAME, record }));

await sub.subscribe('chat');
sub.on('message', (_channel, text) => {
  for (const client of wss.clients) client.send(text);
});

wss.on('connection', (ws) => {
  ws.on('message', async (data) => {
    const message = JSON.parse(String(data));
    if (message.type === 'say') {
      // The sender's connection id rides with the message to every server.
      await pub.publish('chat', JSON.stringify({ type: 'said', text: message.text, via: NAME, id: getCorrelationId() }));
    } else if (message.type === 'history') {
      ws.send(JSON.stringify({ type: 'history', lines: renderHistory(300), id: getCorrelationId() }));
    } else if (message.type === 'typing') {
      // A missing `await`: nobody learns whether the notice went out. loopsight reports it as floating.
      notifyTyping(pub, message.from);
      ws.send(JSON.stringify({ type: 'typing-ok', id: getCorrelationId() }));
    }
  });
});

server.listen(0, '127.0.0.1', () => send({ type: 'ready', server: NAME, port: server.address().port }));

process.on('message', async (message) => {
  if (message?.type !== 'stop') return;
  // The clients have closed: give their sockets' 'close' a moment to arrive.
  for (let i = 0; i < 100 && monitor.counters().connections?.open > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  send({ type: 'connections', server: NAME, connections: monitor.counters().connections });
  for (const client of wss.clients) client.terminate();
  wss.close();
  server.close();
  await monitor.stop();
  await Promise.all([pub.quit(), sub.quit()]);
  process.disconnect();
});
