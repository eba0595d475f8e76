// Named blockers for stall tests: the stall report must name these functions and this file.

import { execFileSync } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** Busy-waits `ms` milliseconds in JavaScript, where V8 can pause it at once. */
export function blockTheLoop(ms: number): number {
  const end = performance.now() + ms;
  let spins = 0;
  while (performance.now() < end) spins++;
  return spins;
}

let huge: string | undefined;

/** A JSON text of about `mb` MB that takes a few hundred ms to parse. Built once, cached. */
export function hugeJson(mb = 20): string {
  if (huge && huge.length >= mb * 1e6) return huge;
  const item = JSON.stringify({ id: 123456, name: 'item name', tags: ['a', 'b', 'c'], nested: { x: 1.5, y: [1, 2, 3] } });
  huge = `[${new Array(Math.ceil((mb * 1e6) / (item.length + 1))).fill(item).join(',')}]`;
  return huge;
}

/** Parses a huge JSON text: the time is spent inside V8's JSON.parse, which a pause cannot interrupt. */
export function parseHugeJson(text: string): number {
  const parsed = JSON.parse(text) as unknown[];
  return parsed.length;
}

// Synchronous native calls: V8 cannot pause inside them, so the pause lands after each returns.
// Each function goes on to call something after the native call (as real code does), so the pause
// lands while it is still on the stack.

/** About 300–600 ms of PBKDF2 in OpenSSL. */
function hashPasswordSync(): number {
  return pbkdf2Sync('correct horse battery staple', 'salt', 1_000_000, 64, 'sha512').length;
}

let noise: Buffer | undefined;

/** gzip of 16 MB of random bytes at level 9. */
function compressSync(): number {
  noise ??= randomBytes(16e6);
  return gzipSync(noise, { level: 9 }).length;
}

/** JSON.parse of the ≥ 20 MB text, then a look at what it parsed. */
function importOrders(text: string): number {
  const orders = JSON.parse(text) as unknown[];
  return countOrders(orders);
}

function countOrders(orders: unknown[]): number {
  return orders.length;
}

let largeFile: string | undefined;

/** readFileSync of a 384 MB file (sparse: made at once, read in full). */
function readLargeFile(): number {
  if (!largeFile) {
    largeFile = join(tmpdir(), `loopsight-large-${process.pid}.bin`);
    closeSync(openSync(largeFile, 'w'));
    truncateSync(largeFile, 384 * 1024 * 1024);
    process.once('exit', () => {
      try {
        truncateSync(largeFile as string, 0);
      } catch {}
    });
  }
  return readFileSync(largeFile).length;
}

/** execFileSync of a child that lives 400 ms. */
function runReportSync(): number {
  return execFileSync(process.execPath, ['-e', "setTimeout(() => process.stdout.write('done'), 400)"]).length;
}

/** The native blockers by the name a test route takes. */
export const nativeBlockers: Record<string, () => number> = {
  pbkdf2: hashPasswordSync,
  gzip: compressSync,
  json: () => importOrders(hugeJson()),
  read: readLargeFile,
  exec: runReportSync,
};
