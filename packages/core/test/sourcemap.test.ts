import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StallReport } from '@loopsight/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A TypeScript application compiled with source maps (a .map file beside CommonJS output, and an
// inline map in ES module output): stall reports name the .ts file and the blocking line, with
// and without --enable-source-maps. The run uses core's build, as an installed app would.
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const source = join(fixtures, 'ts-app', 'orders.ts');
const tsc = fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url));
const blockingLine =
  readFileSync(source, 'utf8')
    .split('\n')
    .findIndex((l) => l.includes('// BLOCKING LINE')) + 1;

let out: string;
beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), 'loopsight-ts-'));
  const common = ['--target', 'es2022', '--strict', '--skipLibCheck', '--types', 'node', source];
  execFileSync(process.execPath, [tsc, ...common, '--module', 'commonjs', '--sourceMap', '--outDir', join(out, 'cjs')]);
  execFileSync(process.execPath, [tsc, ...common, '--module', 'es2022', '--inlineSourceMap', '--outDir', join(out, 'esm')]);
}, 60_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

function stall(format: 'cjs' | 'esm', flags: string[]): StallReport {
  const file = join(out, format, 'orders.js');
  const stdout = execFileSync(process.execPath, [...flags, join(fixtures, 'sourcemap-run.mjs'), file, format], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  const reports = JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]') as StallReport[];
  const mine = reports.filter((r) => r.request?.correlationId === 'sm-1');
  expect(mine, stdout).toHaveLength(1);
  return mine[0] as StallReport;
}

describe.each([
  ['CommonJS with a .map file', 'cjs'],
  ['ES module with an inline map', 'esm'],
] as const)('%s', (_name, format) => {
  it.each([
    ['without --enable-source-maps', []],
    ['with --enable-source-maps', ['--enable-source-maps']],
  ])('the culprit is the .ts file and its blocking line, %s', (_flag, flags) => {
    const report = stall(format, flags);
    expect(report.culprit?.functionName).toBe('priceOrders');
    expect(report.culprit?.url).toMatch(/fixtures[\\/]ts-app[\\/]orders\.ts$/);
    expect(report.culprit?.line).toBe(blockingLine);
    // The code that ran is kept beside it.
    expect(report.culprit?.generated?.url).toMatch(/orders\.js$/);
    expect(report.culprit?.generated?.line).not.toBe(blockingLine);
    // A mapped frame keeps the style of the frame it maps (a file: URL or a path).
    expect(report.culprit?.url.startsWith('file:')).toBe(report.culprit?.generated?.url.startsWith('file:'));
  });
});
