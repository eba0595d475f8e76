import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as context from '@loopsight/context';
import * as core from '@loopsight/core';
import * as adapterKit from '@loopsight/core/adapter';
import * as exporterKit from '@loopsight/core/exporter';
import * as express from '@loopsight/express';
import * as fastify from '@loopsight/fastify';
import * as koa from '@loopsight/koa';
import { expect, it } from 'vitest';

// The public surface: a change here is a change users see.
it('pins the runtime exports of every package', () => {
  expect(Object.keys(core).sort()).toEqual([
    'CHANNELS',
    'ROUTE_NONE',
    'ROUTE_OTHER',
    'ROUTE_STARTUP',
    'ROUTE_UNKNOWN',
    'ROUTE_UNROUTED',
    'createMonitor',
    'currentScope',
    'detach',
    'expectBlocking',
    'isUserFrame',
    'traceIdOf',
  ]);
  expect(Object.keys(context).sort()).toEqual([
    'correlationHeaders',
    'enablePropagation',
    'getCorrelationId',
    'pinoMixin',
    'traceIdOf',
    'winstonFormat',
    'withCorrelationId',
  ]);
  expect(Object.keys(express)).toEqual(['loopsight']);
  expect(Object.keys(fastify)).toEqual(['loopsight']);
  expect(Object.keys(koa)).toEqual(['loopsight']);
});

it('keeps the kit for loopsight’s own packages out of the root entries', () => {
  const roots = [core, context, express, fastify, koa].flatMap((entry) => Object.keys(entry));
  // Public contracts (CHANNELS, ROUTE_*, traceIdOf) are on the root entries, not in the kit.
  const kit = [...Object.keys(adapterKit), ...Object.keys(exporterKit)];
  expect(kit.length).toBeGreaterThan(10);
  expect(roots.filter((name) => kit.includes(name))).toEqual([]);
});

it('a monitor shows no underscore member, at run time or in the published types', () => {
  const monitor = core.createMonitor({ onReport: () => {} });
  const names = (object: object) => [...Object.getOwnPropertyNames(object), ...Object.getOwnPropertyNames(Object.getPrototypeOf(object))];
  expect(names(monitor).filter((name) => name.startsWith('_'))).toEqual([]);
  // Reached through a Symbol.for key, so that every copy of core recognizes every monitor.
  expect(Object.getOwnPropertySymbols(monitor).map(String)).toEqual(['Symbol(loopsight.core.monitor.v1)']);
  expect(adapterKit.internals(monitor).options.correlation.header).toBe('x-request-id');
  const kit = [...Object.keys(adapterKit), ...Object.keys(exporterKit), 'MonitorInternals', 'HttpGlue', 'ShedAnswer', 'ResolvedOptions'];

  for (const pkg of ['core', 'context', 'express', 'fastify', 'koa', 'prometheus', 'otel']) {
    const dir = fileURLToPath(new URL(`../../${pkg}/`, import.meta.url));
    const manifest = JSON.parse(readFileSync(`${dir}package.json`, 'utf8')) as { exports: Record<string, { import: { types: string } }> };
    const root = manifest.exports['.']?.import.types as string;
    const text = readFileSync(`${dir}${root}`, 'utf8');
    expect(text.length).toBeGreaterThan(0);
    // Follow the chunks the root declaration re-exports (tsup shares them between entries).
    const chunks = [...text.matchAll(/from '\.\/([^']+)\.js'/g)].map((m) => readFileSync(`${dir}dist/${m[1]}.d.ts`, 'utf8'));
    if (pkg === 'core') {
      const monitorType = /interface Monitor \{[\s\S]*?\n\}/.exec(chunks.join('\n'))?.[0] ?? '';
      expect(monitorType).toMatch(/run<T>/);
      expect(monitorType).not.toMatch(/^\s+_[a-zA-Z]+[(?:]/m);
    }
    // What the root entry exports by name: nothing of the kit (its chunks may declare it, unexported).
    const exported = [...text.matchAll(/export \{([^}]*)\}/g)].flatMap((m) =>
      (m[1] as string).split(',').map((n) => n.trim().split(' as ').pop()),
    );
    expect(exported.length, `@loopsight/${pkg}`).toBeGreaterThan(0);
    expect(
      exported.filter((name) => kit.includes(name as string)),
      `@loopsight/${pkg}`,
    ).toEqual([]);
  }
});

it('each kit serves its audience: every name is used by one of its packages, none only by tests', () => {
  const packages = fileURLToPath(new URL('../../', import.meta.url));
  const sources = (pkg: string) =>
    readdirSync(`${packages}${pkg}/src`, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .map((file) => readFileSync(`${packages}${pkg}/src/${file}`, 'utf8'))
      .join('\n');
  // Names a package takes from a kit: `import { a, type B } from '…'`, and register's lazy `load.adapterKit()`.
  const used = (text: string, entry: 'adapter' | 'exporter') => {
    const names = new Set<string>();
    const lists = [
      ...[...text.matchAll(new RegExp(`import (?:type )?\\{([^}]*)\\} from '@loopsight/core/${entry}'`, 'g'))].map((m) => m[1] as string),
      ...[...text.matchAll(/\{([^}]*)\}\s*=\s*load\.adapterKit\(\)/g)].map((m) => (entry === 'adapter' ? (m[1] as string) : '')),
      ...[...text.matchAll(/load\.adapterKit\(\)\.(\w+)/g)].map((m) => (entry === 'adapter' ? (m[1] as string) : '')),
    ];
    for (const list of lists)
      for (const name of list.split(','))
        if (name.trim())
          names.add(
            name
              .trim()
              .replace(/^type /, '')
              .split(' as ')[0] as string,
          );
    return names;
  };
  const dirs = readdirSync(packages).filter((dir) => dir !== 'core' && existsSync(`${packages}${dir}/src`));
  const exporters = ['prometheus', 'otel'];
  const byAdapters = new Set(dirs.filter((dir) => !exporters.includes(dir)).flatMap((dir) => [...used(sources(dir), 'adapter')]));
  const byExporters = new Set(exporters.flatMap((dir) => [...used(sources(dir), 'exporter')]));
  expect(Object.keys(adapterKit).filter((name) => !byAdapters.has(name))).toEqual([]);
  expect(Object.keys(exporterKit).filter((name) => !byExporters.has(name))).toEqual([]);
  // Audiences stay apart: an adapter takes nothing from the exporters' kit, an exporter nothing from the adapters'.
  for (const dir of dirs) expect(used(sources(dir), exporters.includes(dir) ? 'adapter' : 'exporter'), dir).toEqual(new Set());
  expect(Object.keys(adapterKit).filter((name) => name in exporterKit)).toEqual([]);
});
