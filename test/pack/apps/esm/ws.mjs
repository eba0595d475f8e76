// @loopsight/ws as installed from its tarball, beside @loopsight/express on one server with one
// monitor: the upgrade request's id becomes the connection's (echoed in the handshake), and a
// message handler reads it, as does the 'request' record of the message.
import http from 'node:http';
import { getCorrelationId } from '@loopsight/context';
import { loopsight as expressLoopsight } from '@loopsight/express';
import { loopsight } from '@loopsight/ws';
import express from 'express';
import { WebSocket, WebSocketServer } from 'ws';

const app = express();
const ls = expressLoopsight();
app.use(ls);
const server = http.createServer(app);
const wss = new WebSocketServer({ server });
const monitor = loopsight(wss, { monitor: ls.monitor, messageName: (data) => JSON.parse(String(data)).type });
const records = [];
monitor.on('request', (r) => r.method === 'WS' && records.push({ correlationId: r.correlationId, route: r.route }));
wss.on('connection', (socket) => {
  socket.on('message', async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    socket.send(JSON.stringify({ seen: getCorrelationId() }));
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

const client = new WebSocket(`ws://127.0.0.1:${server.address().port}/chat`, { headers: { 'x-request-id': 'esm-ws-1' } });
const echoed = await new Promise((resolve, reject) => {
  client.once('upgrade', (res) => resolve(res.headers['x-request-id']));
  client.once('error', reject);
});
await new Promise((resolve) => (client.readyState === WebSocket.OPEN ? resolve() : client.once('open', resolve)));
const answer = await new Promise((resolve) => {
  client.once('message', (data) => resolve(JSON.parse(String(data))));
  client.send(JSON.stringify({ type: 'say' }));
});
client.close();
await new Promise((resolve) => client.once('close', resolve));
await new Promise((resolve) => wss.close(resolve));
await new Promise((resolve) => server.close(resolve));
await ls.monitor.stop();
process.stdout.write(JSON.stringify({ echoed, answer, records }));
