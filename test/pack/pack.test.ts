// What a user gets from `npm install`: every public package packed with `pnpm pack` (as `pnpm
// publish` packs it), installed with npm into throw-away apps next to Express, Fastify and Koa from
// the registry, and driven with real HTTP. Needs the packages built (`pnpm test` builds first) and
// the npm registry. One `npm install` per app; the three apps install side by side.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npmEnv, packAll, publicPackages, root, run } from '../../scripts/packages.mjs';
import { freePort } from '../../test-support/ports.js';

// biome-ignore lint/suspicious/noExplicitAny: a package.json read from a tarball is checked field by field below.
type Manifest = Record<string, any>;

const fixtures = join(root, 'test', 'pack', 'apps');
const rootManifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const packages: { name: string; dir: string; version: string }[] = publicPackages();
const names = packages.map((pkg) => pkg.name);
// Generous: the apps start, serve and exit in about a second, but CI machines are shared.
const APP_TIMEOUT = 90_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Peer dependencies and the majors each must admit: what the adapters and exporters support.
const PEER_MAJORS: Record<string, number[]> = {
  express: [4, 5],
  fastify: [4, 5],
  koa: [2, 3],
  hono: [4],
  '@hono/node-server': [1, 2],
  'prom-client': [15],
  '@opentelemetry/api': [1],
  bullmq: [5, 6],
  '@nestjs/common': [10, 11, 12],
  '@nestjs/core': [10, 11, 12],
  ws: [8],
};
const REQUIRED_PEERS: Record<string, string[]> = {
  '@loopsight/express': ['express'],
  '@loopsight/fastify': ['fastify'],
  '@loopsight/koa': ['koa'],
  '@loopsight/hono': ['hono', '@hono/node-server'],
  '@loopsight/prometheus': ['prom-client'],
  '@loopsight/otel': ['@opentelemetry/api'],
  '@loopsight/nestjs': ['@nestjs/common', '@nestjs/core'],
  '@loopsight/ws': ['ws'],
  '@loopsight/bullmq': ['bullmq'],
};

let work: string;
const tarballs = new Map<string, string>();
const manifests = new Map<string, Manifest>();
const contents = new Map<string, string[]>();

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

/** `^4.17.0 || ^5.0.0` → [4, 5]; anything but caret ranges joined by `||` is refused. */
function caretMajors(range: string): number[] {
  return range.split('||').map((part) => {
    const match = /^\^(\d+)(\.(\d+|x)){0,2}$/.exec(part.trim());
    if (!match) throw new Error(`not a caret range: ${JSON.stringify(part.trim())} in ${JSON.stringify(range)}`);
    return Number(match[1]);
  });
}

/** A throw-away app: the fixture's files, a package.json with every packed package, one npm install. */
async function createApp(name: string, type: 'module' | 'commonjs', dependencies: Record<string, string>, fixture = name): Promise<string> {
  const dir = join(work, name);
  cpSync(join(fixtures, fixture), dir, { recursive: true });
  cpSync(join(fixtures, 'shared'), dir, { recursive: true });
  const loopsight = Object.fromEntries(packages.map((pkg) => [pkg.name, `file:${tarballs.get(pkg.name)}`]));
  const manifest = { name: `loopsight-${name}-app`, private: true, type, dependencies: { ...loopsight, ...dependencies } };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  // --install-links: a file: directory (legacy-dep) is installed as a copy, like a registry package.
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--install-links', '--loglevel=error'], {
    cwd: dir,
    env: npmEnv(),
  });
  return dir;
}

async function node(cwd: string, args: string[]): Promise<unknown> {
  const { stdout } = await run(process.execPath, args, { cwd, env: npmEnv(), timeoutMs: 60_000 });
  return JSON.parse(stdout);
}

interface Probe {
  name: string;
  given: { status: number; echoed: string | null; body: { id?: string; fromCommonJs?: string } };
  generated: { status: number; echoed: string | null; body: { id?: string; fromCommonJs?: string } };
  events: { correlationId: string; route?: string; status?: number }[];
}

/** What every adapter must do, whatever the app's module format. */
function expectAdapters(
  results: Probe[],
  prefix: string,
  { viaCommonJs = false, frameworks = ['express', 'fastify', 'koa', 'hono'] } = {},
): void {
  expect(results.map((r) => r.name)).toEqual(frameworks.map((framework) => `${prefix}-${framework}`));
  for (const { name, given, generated, events } of results) {
    // An incoming id is echoed and is the one the handler reads, after an async hop.
    expect(given, name).toMatchObject({ status: 200, echoed: `${name}-42`, body: { id: `${name}-42` } });
    // Without one, a fresh UUID: echoed, and the same in the handler.
    expect(generated.status, name).toBe(200);
    expect(generated.echoed, name).toMatch(UUID);
    expect(generated.body.id, name).toBe(generated.echoed);
    if (viaCommonJs) {
      expect(given.body.fromCommonJs, name).toBe(`${name}-42`);
      expect(generated.body.fromCommonJs, name).toBe(generated.echoed);
    }
    // The monitor saw both requests, with the route template.
    expect(events, name).toEqual([
      { correlationId: `${name}-42`, route: '/users/:id', status: 200 },
      { correlationId: generated.echoed, route: '/users/:id', status: 200 },
    ]);
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'loopsight-pack-'));
  mkdirSync(join(work, 'tarballs'));
  for (const pkg of await packAll(join(work, 'tarballs'))) {
    tarballs.set(pkg.name, pkg.tarball);
    const unpacked = join(work, 'unpacked', pkg.dir);
    mkdirSync(unpacked, { recursive: true });
    await run('tar', ['-xzf', pkg.tarball, '-C', unpacked]);
    manifests.set(pkg.name, JSON.parse(readFileSync(join(unpacked, 'package', 'package.json'), 'utf8')));
    contents.set(pkg.name, filesUnder(join(unpacked, 'package')));
  }
}, 120_000);

afterAll(() => {
  // LOOPSIGHT_KEEP_PACK=1 keeps the apps to poke at: cd into the printed directory and run them.
  if (process.env.LOOPSIGHT_KEEP_PACK) console.log(`pack test apps kept in ${work}`);
  else if (work) rmSync(work, { recursive: true, force: true });
  // Three apps' node_modules: deleting them took over 30 s on a loaded machine.
}, 120_000);

describe.each(packages.map((pkg) => [pkg.name, pkg] as const))('the packed %s', (name, pkg) => {
  const manifest = () => manifests.get(name) as Manifest;
  const files = () => contents.get(name) as string[];

  it('carries no workspace: range; its own packages are required at the versions released with it', () => {
    expect(JSON.stringify(manifest())).not.toContain('workspace:');
    for (const [dep, range] of Object.entries<string>(manifest().dependencies ?? {})) {
      const sibling = packages.find((p) => p.name === dep);
      if (sibling) expect(range, dep).toBe(`^${sibling.version}`);
    }
  });

  it('ships dist/, README.md, CHANGELOG.md, LICENSE and package.json only (and a stub per extra entry)', () => {
    expect(manifest().files).toEqual(expect.arrayContaining(['dist']));
    expect(files()).toEqual(
      expect.arrayContaining(['CHANGELOG.md', 'LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.cjs']),
    );
    // An entry besides the root (core's ./adapter and ./exporter, loop-lag's ./kit) has a folder of its name for node10 resolution.
    const subpaths = Object.keys(manifest().exports)
      .filter((key) => key !== '.' && key !== './package.json')
      .map((key) => key.slice(2));
    for (const sub of subpaths) expect(files()).toEqual(expect.arrayContaining([`${sub}/package.json`, `${sub}/README.md`]));
    const stub = (f: string) => subpaths.some((sub) => f === `${sub}/package.json` || f === `${sub}/README.md`);
    expect(files().filter((f) => !/^(dist\/.+|CHANGELOG\.md|LICENSE|README\.md|package\.json)$/.test(f) && !stub(f))).toEqual([]);
  });

  it('exports ESM and CommonJS with types first, each pointing at a shipped file', () => {
    const m = manifest();
    expect(m.type).toBe('module');
    expect(m.exports['./package.json']).toBe('./package.json');
    const root_ = m.exports['.'];
    expect(Object.keys(root_)).toEqual(['import', 'require']);
    for (const [condition, typesExtension, codeExtension] of [
      ['import', '.d.ts', '.js'],
      ['require', '.d.cts', '.cjs'],
    ] as const) {
      expect(Object.keys(root_[condition]), condition).toEqual(['types', 'default']);
      expect(root_[condition].types.endsWith(typesExtension), condition).toBe(true);
      expect(root_[condition].default.endsWith(codeExtension), condition).toBe(true);
      expect(files()).toContain(root_[condition].types.replace(/^\.\//, ''));
      expect(files()).toContain(root_[condition].default.replace(/^\.\//, ''));
    }
  });

  it('says where it runs and where it comes from: engines, license, repository, keywords', () => {
    const m = manifest();
    expect(m.name).toBe(name);
    expect(m.engines).toEqual({ node: '>=20' });
    expect(m.license).toBe('MIT');
    expect(m.description).toEqual(expect.any(String));
    expect(m.repository).toEqual({ type: 'git', url: 'git+https://github.com/loopsight/loopsight.git', directory: pkg.dir });
    expect(m.keywords.length).toBeGreaterThan(2);
    expect(typeof m.sideEffects === 'boolean' || Array.isArray(m.sideEffects)).toBe(true);
  });

  it('takes the frameworks and telemetry libraries the user already has as peers, for every supported major', () => {
    const m = manifest();
    const peers: Record<string, string> = m.peerDependencies ?? {};
    expect(Object.keys(peers)).toEqual(expect.arrayContaining(REQUIRED_PEERS[name] ?? []));
    for (const [peer, range] of Object.entries(peers)) {
      if (PEER_MAJORS[peer]) expect(caretMajors(range), peer).toEqual(PEER_MAJORS[peer]);
    }
    for (const dependency of Object.keys(m.dependencies ?? {})) expect(Object.keys(PEER_MAJORS), dependency).not.toContain(dependency);
  });
});

describe('installed with npm', () => {
  const apps: Record<string, string> = {};

  beforeAll(async () => {
    const { typescript, '@types/node': typesNode } = rootManifest.devDependencies;
    const [esm, cjs, ts] = await Promise.all([
      createApp('esm', 'module', {
        express: '^5.0.0',
        fastify: '^5.0.0',
        koa: '^3.0.0',
        '@koa/router': '^15.0.0',
        hono: '^4.0.0',
        '@hono/node-server': '^2.0.0',
        'legacy-dep': 'file:legacy-dep',
        'prom-client': '^15.0.0',
        '@opentelemetry/api': '^1.9.0',
        // @loopsight/nestjs loads them (surface.mjs imports every package).
        '@nestjs/common': '^11.0.0',
        '@nestjs/core': '^11.0.0',
        'reflect-metadata': '^0.2.0',
        rxjs: '^7.8.0',
        ws: '^8.0.0',
      }),
      createApp('cjs', 'commonjs', {
        express: '^4.17.0',
        fastify: '^4.0.0',
        koa: '^2.13.0',
        '@koa/router': '^15.0.0',
        hono: '^4.0.0',
        '@hono/node-server': '^1.19.0',
      }),
      createApp('ts', 'module', {
        express: '^5.0.0',
        fastify: '^5.0.0',
        koa: '^3.0.0',
        '@koa/router': '^15.0.0',
        hono: '^4.0.0',
        '@hono/node-server': '^2.0.0',
        '@types/express': '^5.0.0',
        '@types/koa': '^3.0.0',
        '@types/node': typesNode,
        typescript,
      }),
    ]);
    Object.assign(apps, { esm, cjs, ts });
  }, 240_000);

  it('installs the packed packages, not some other copy', () => {
    for (const app of Object.values(apps)) {
      for (const pkg of packages) {
        const installed = JSON.parse(readFileSync(join(app, 'node_modules', pkg.name, 'package.json'), 'utf8'));
        expect(installed, `${pkg.name} in ${app}`).toEqual(manifests.get(pkg.name));
      }
    }
  });

  it(
    'an ESM app: Express 5, Fastify 5, Koa 3 and Hono 4 echo the id, and a CommonJS dependency reads the same one',
    async () => {
      expectAdapters((await node(apps.esm as string, ['server.mjs'])) as Probe[], 'esm', { viaCommonJs: true });
    },
    APP_TIMEOUT,
  );

  it(
    'an ESM app: a request that blocks the loop is reported with its id and route; the exporters use the prom-client of the app',
    async () => {
      const { stall, metricTypes } = (await node(apps.esm as string, ['extras.mjs'])) as {
        stall?: {
          durationMs: number;
          request?: { correlationId: string; route?: string };
          stackSource: string;
          frames: number;
          capture?: string;
        };
        metricTypes: string[];
      };
      expect(stall?.request).toMatchObject({ correlationId: 'esm-stall-1', route: '/reports/:day' });
      // The optional native addon came with npm install (prebuilt: no compiler), and on Node 24+
      // took the stack without a debugger session.
      // `auto` is the inspector on every Node: only it names the request (docs/loop-lag.md).
      expect(stall?.capture).toBe('inspector');
      expect(stall?.durationMs).toBeGreaterThanOrEqual(100);
      expect(metricTypes).toEqual(
        expect.arrayContaining(['loopsight_event_loop_delay_seconds histogram', 'loopsight_event_loop_stalls_total counter']),
      );
    },
    APP_TIMEOUT,
  );

  it(
    "an ESM app: @loopsight/ws beside @loopsight/express on one server gives each message its connection's id",
    async () => {
      const result = (await node(apps.esm as string, ['ws.mjs'])) as { echoed: string; answer: { seen: string }; records: unknown[] };
      expect(result).toEqual({ echoed: 'esm-ws-1', answer: { seen: 'esm-ws-1' }, records: [{ correlationId: 'esm-ws-1', route: 'say' }] });
    },
    APP_TIMEOUT,
  );

  it(
    'a CommonJS app: Express 4, Fastify 4, Koa 2 and Hono 4 on @hono/node-server 1 echo the id the handler reads',
    async () => {
      expectAdapters((await node(apps.cjs as string, ['server.cjs'])) as Probe[], 'cjs');
    },
    APP_TIMEOUT,
  );

  it('a TypeScript app (module nodenext, strict) type-checks against the shipped .d.ts and .d.cts, and runs', async () => {
    const dir = apps.ts as string;
    const tsc = join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
    await Promise.all(
      ['tsconfig.json', 'tsconfig.declarations.json'].map((config) =>
        run(process.execPath, [tsc, '-p', config], { cwd: dir, timeoutMs: 150_000 }),
      ),
    );
    expectAdapters((await node(dir, ['server.js'])) as Probe[], 'ts');
    expect(await node(dir, ['job.cjs'])).toEqual({
      seen: 'ts-cjs-job',
      events: [{ correlationId: 'ts-cjs-job', route: 'queue:orders' }],
    });
  }, 180_000);

  it.each([
    ['esm', '--import=@loopsight/register'],
    ['cjs', '--require=@loopsight/register'],
  ])(
    'the %s app, unmodified, is watched with NODE_OPTIONS=%s',
    async (app, option) => {
      const port = await freePort();
      const env = { ...npmEnv(), NODE_OPTIONS: option, LOOPSIGHT_METRICS_PORT: String(port) };
      const { stdout } = await run(process.execPath, ['preload-app.cjs'], { cwd: apps[app] as string, env, timeoutMs: 60_000 });
      expect(JSON.parse(stdout)).toEqual({
        status: 200,
        echoed: 'preload-42',
        body: { upstreamSaw: 'preload-42' },
        // The upstream is a server of the same process: its request, which got the id propagated, ends first.
        events: [
          { correlationId: 'preload-42', status: 200 },
          { correlationId: 'preload-42', status: 200 },
        ],
        metrics: true,
      });
    },
    APP_TIMEOUT,
  );

  it(
    'every package exports the same names from its ESM and its CommonJS build',
    async () => {
      const surface = (await node(apps.esm as string, ['surface.mjs', ...names])) as Record<string, { esm: string[]; cjs: string[] }>;
      expect(Object.keys(surface)).toEqual(names);
      for (const name of names) {
        expect(surface[name]?.esm.length, name).toBeGreaterThan(0);
        expect(surface[name]?.cjs, name).toEqual(surface[name]?.esm);
      }
    },
    APP_TIMEOUT,
  );
});

describe('installed with npm into Nest apps', () => {
  const apps: Record<string, string> = {};
  const nest = (major: number) => ({
    '@nestjs/common': `^${major}.0.0`,
    '@nestjs/core': `^${major}.0.0`,
    '@nestjs/platform-express': `^${major}.0.0`,
    '@nestjs/platform-fastify': `^${major}.0.0`,
    'reflect-metadata': '^0.2.0',
    rxjs: '^7.8.0',
  });

  beforeAll(async () => {
    const { typescript, '@types/node': typesNode } = rootManifest.devDependencies;
    const tools = { typescript, '@types/node': typesNode };
    const [nest12, nest10] = await Promise.all([
      createApp('nest', 'commonjs', { ...nest(12), ...tools }),
      createApp('nest10', 'commonjs', { ...nest(10), ...tools }, 'nest'),
    ]);
    Object.assign(apps, { nest12, nest10 });
  }, 240_000);

  // The newest and the oldest supported major; the workspace's own tests run Nest 11.
  for (const major of [12, 10]) {
    it(`Nest ${major}: a strict TypeScript app with decorators compiles, and serves on Express and Fastify`, async () => {
      const dir = apps[`nest${major}`] as string;
      await run(process.execPath, [join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
        cwd: dir,
        timeoutMs: 150_000,
      });
      expectAdapters((await node(dir, ['server.js', `nest${major}`])) as Probe[], `nest${major}`, { frameworks: ['express', 'fastify'] });
    }, 180_000);
  }

  it(
    'Nest 12 from an ES module: the ESM build serves on Express and Fastify',
    async () => {
      expectAdapters((await node(apps.nest12 as string, ['server.mjs'])) as Probe[], 'esm-nest', { frameworks: ['express', 'fastify'] });
    },
    APP_TIMEOUT,
  );
});
