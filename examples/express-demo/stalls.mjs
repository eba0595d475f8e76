// Two kinds of stall and the reports loopsight writes for them (one JSON line each on stderr):
//   node stalls.mjs            a JavaScript block, then a JSON.parse block (reported as late-pause)
//   node stalls.mjs profiler   the same with loopLag.profiler on (the JSON.parse stall gets its stack)
import { loopsight } from '@loopsight/express';
import express from 'express';

const profiler = process.argv[2] === 'profiler';
const app = express();
app.use(loopsight({ promises: false, loopLag: { profiler } }));

/** 300 ms of JavaScript: paused in place. */
function renderInvoice(ms) {
  const end = performance.now() + ms;
  let lines = 0;
  while (performance.now() < end) lines++;
  return lines;
}

/** JSON.parse of a large text: native code that V8 cannot pause. */
function parseUpload(text) {
  return JSON.parse(text).length;
}

const item = JSON.stringify({ id: 1, name: 'x', tags: ['a', 'b'], nested: { y: [1, 2, 3] } });
const upload = `[${new Array(300_000).fill(item).join(',')}]`;

app.get('/invoices/:id', (_req, res) => res.json({ lines: renderInvoice(300) }));
app.post('/uploads', (_req, res) => res.json({ items: parseUpload(upload) }));

const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
await sleep(500);
const base = `http://127.0.0.1:${server.address().port}`;
await (await fetch(`${base}/invoices/42`, { headers: { 'x-request-id': 'inv-42' } })).text();
await sleep(300);
await (await fetch(`${base}/uploads`, { method: 'POST', headers: { 'x-request-id': 'up-7' } })).text();
await sleep(800);
server.close();
