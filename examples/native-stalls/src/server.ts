// Handlers that block the loop inside synchronous native calls, compiled by tsc with source maps.
// `npx pnpm@10.34.9 --filter native-stalls-example start` prints one report per stall: the
// culprit is the .ts line that made the call, and the request is named although V8 could only
// pause after each native call had returned (docs/loop-lag.md, "Stalls inside native code").
import { execFileSync } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { loopsight } from '@loopsight/express';
import express, { type Request, type Response } from 'express';

interface Order {
  id: number;
  sku: string;
  quantity: number;
}

function hashPassword(password: string): string {
  return pbkdf2Sync(password, 'per-user-salt', 1_000_000, 64, 'sha512').toString('hex');
}

function compressExport(rows: Buffer): number {
  return gzipSync(rows, { level: 9 }).length;
}

function importOrders(body: string): number {
  const orders: Order[] = JSON.parse(body);
  return orders.filter((order) => order.quantity > 0).length;
}

function loadCatalog(file: string): number {
  return readFileSync(file).length;
}

function convertInvoice(): string {
  return execFileSync(process.execPath, ['-e', "setTimeout(() => process.stdout.write('%PDF'), 300)"], { encoding: 'utf8' });
}

const rows = randomBytes(16e6);
const item = JSON.stringify({ id: 1, sku: 'sku-1', quantity: 2 });
const upload = `[${new Array(500_000).fill(item).join(',')}]`;
const catalog = join(tmpdir(), `catalog-${process.pid}.bin`);
closeSync(openSync(catalog, 'w'));
truncateSync(catalog, 384 * 1024 * 1024);

const reports: unknown[] = [];
const app = express();
app.use(loopsight({ promises: false, onReport: (report) => reports.push(report) }));
app.post('/login', (_req: Request, res: Response) => res.json({ token: hashPassword('hunter2').slice(0, 8) }));
app.get('/exports/:id', (_req: Request, res: Response) => res.json({ bytes: compressExport(rows) }));
app.post('/orders/import', (_req: Request, res: Response) => res.json({ imported: importOrders(upload) }));
app.get('/catalog', (_req: Request, res: Response) => res.json({ bytes: loadCatalog(catalog) }));
app.get('/invoices/:id/pdf', (_req: Request, res: Response) => res.json({ pdf: convertInvoice() }));

const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
await sleep(300);
const { port } = server.address() as { port: number };
const calls: [string, string, string][] = [
  ['POST', '/login', 'login-1'],
  ['GET', '/exports/7', 'export-7'],
  ['POST', '/orders/import', 'import-3'],
  ['GET', '/catalog', 'catalog-1'],
  ['GET', '/invoices/42/pdf', 'pdf-42'],
];
for (const [i, [method, path, id]] of calls.entries()) {
  await (await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { 'x-request-id': id } })).text();
  // Each report comes from the watchdog's thread once the loop runs again.
  for (const end = Date.now() + 5_000; reports.length <= i && Date.now() < end; ) await sleep(20);
}
// One line per report, paths relative to this folder and the stack cut to three frames.
const short = (url: string) => url.replace(`file://${process.cwd()}/`, '').replace(`${process.cwd()}/`, '');
type Frame = { functionName: string; url: string; line: number; column: number; generated?: { url: string; line: number; column: number } };
const shorten = (frame: Frame): Frame => ({
  ...frame,
  url: short(frame.url),
  ...(frame.generated ? { generated: { ...frame.generated, url: short(frame.generated.url) } } : {}),
});
for (const report of reports as { culprit?: Frame; stack: Frame[] }[]) {
  const { culprit, stack, ...rest } = report;
  const line = { culprit: culprit && shorten(culprit), ...rest, stack: stack.slice(0, 3).map(shorten) };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
server.close();
rmSync(catalog, { force: true });
