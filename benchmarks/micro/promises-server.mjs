// node benchmarks/micro/promises-server.mjs <off|sampled|full>: Express 5 with loopsight, the
// promise tracker in the given mode, serving GET /hello and GET /awaits (10 awaits per request).
// Started by promises-http.mjs; reports its CPU time over IPC.
import http from 'node:http';
import { loopsight } from '@loopsight/express';
import express from 'express';

const mode = process.argv[2];
// Sampled mode scaled down 30×, same duty cycle as the defaults (1 s every 30 s), so that every
// measured phase holds whole windows and their drains.
const promises = mode === 'off' ? false : mode === 'sampled' ? { mode, sampleWindowMs: 100, sampleIntervalMs: 3_000 } : { mode };
const app = express();
app.use(loopsight({ loopLag: false, promises, onReport: () => {} }));
app.get('/hello', (_req, res) => {
  res.json({ hello: 'world' });
});
async function step(i) {
  await null;
  return i;
}
app.get('/awaits', async (_req, res) => {
  let sum = 0;
  for (let i = 0; i < 10; i++) sum += await step(i);
  res.json({ sum });
});
const server = http.createServer(app);
server.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: server.address().port }));
let mark;
process.on('message', (message) => {
  if (message === 'begin') {
    mark = process.cpuUsage();
    process.send({ type: 'begun' });
  }
  if (message === 'end') {
    const { user, system } = process.cpuUsage(mark);
    process.send({ type: 'cpu', micros: user + system });
  }
  if (message === 'stop') process.exit(0);
});
process.on('disconnect', () => process.exit(0));
