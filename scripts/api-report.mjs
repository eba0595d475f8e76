// `pnpm api` / `pnpm api:check`: one API report per public entry point of every public package,
// written by API Extractor from the built `.d.ts` (run `pnpm build` first; `pnpm lint` does).
//
//   node scripts/api-report.mjs           check: exits 1 if a report differs from what is checked in,
//                                         is missing, or belongs to an entry that no longer exists
//   node scripts/api-report.mjs --local   update: rewrites the reports (and deletes orphaned ones)
//
// The entries come from each package's `exports` map: every subpath except `./package.json` and
// patterns (`./*`) gets a report, so a new entry (say core's `./internal`) needs no change here.
// `.` → packages/<dir>/api/<name>.api.md; `./internal` → packages/<dir>/api/<name>-internal.api.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Extractor, ExtractorConfig, ExtractorLogLevel } from '@microsoft/api-extractor';
import { publicPackages, root } from './packages.mjs';

const local = process.argv.includes('--local');
const tempRoot = join(root, '.tmp', 'api');

/** The `.d.ts` an ESM consumer gets for one `exports` value (`import.types`, else `types`). */
function typesOf(target) {
  if (typeof target === 'string') return /\.d\.[cm]?ts$/.test(target) ? target : undefined;
  if (target === null || typeof target !== 'object') return undefined;
  if (Array.isArray(target)) return target.map(typesOf).find(Boolean);
  return typesOf(target.import) ?? typesOf(target.types) ?? typesOf(target.default) ?? typesOf(target.node);
}

/** Every entry point of a package that gets a report: `{ subpath, types, reportName }`. */
function entriesOf(pkg) {
  const unscoped = pkg.name.replace(/^@[^/]+\//, '');
  const exportsMap = pkg.manifest.exports ?? { '.': { types: pkg.manifest.types } };
  const map =
    typeof exportsMap === 'string' || !Object.keys(exportsMap).some((key) => key.startsWith('.')) ? { '.': exportsMap } : exportsMap;
  return Object.entries(map)
    .filter(([subpath]) => subpath !== './package.json' && !subpath.includes('*'))
    .map(([subpath, target]) => {
      const types = typesOf(target);
      if (!types) throw new Error(`${pkg.name}: exports["${subpath}"] has no types condition`);
      const suffix = subpath === '.' ? '' : `-${subpath.replace(/^\.\//, '').replaceAll('/', '-')}`;
      return { subpath, types, reportName: `${unscoped}${suffix}` };
    });
}

/** API Extractor's settings, the same for every entry: an API report only, warnings written into it. */
function configFor(pkg, entry) {
  const projectFolder = join(root, pkg.dir);
  return {
    projectFolder,
    mainEntryPointFilePath: join(projectFolder, entry.types),
    // Only the entry's own declarations; tsc on the sources (lint's typecheck) is the type check.
    compiler: {
      overrideTsconfig: {
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: true,
          types: ['node'],
        },
        files: [join(projectFolder, entry.types)],
      },
    },
    apiReport: {
      enabled: true,
      reportFileName: entry.reportName,
      reportFolder: join(projectFolder, 'api'),
      reportTempFolder: join(tempRoot, pkg.dir.replace(/^packages\//, '')),
      // Types the API reaches but the entry does not export are part of the surface too: a change to
      // an unexported options type changes what users can pass, so it must show up in the diff.
      includeForgottenExports: true,
    },
    docModel: { enabled: false },
    dtsRollup: { enabled: false },
    tsdocMetadata: { enabled: false },
    newlineKind: 'lf',
    messages: {
      // TSDoc syntax is not checked: the reports are for review, no documentation is generated from them.
      tsdocMessageReporting: { default: { logLevel: 'none' } },
      compilerMessageReporting: { default: { logLevel: 'warning' } },
      extractorMessageReporting: {
        // Anything API Extractor finds about a declaration goes into the report, where review sees it.
        default: { logLevel: 'warning', addToApiReportFile: true },
        // We do not use @public/@beta/@alpha release tags.
        'ae-missing-release-tag': { logLevel: 'none' },
        // A type users need but cannot import by name: exactly what the report is for.
        'ae-forgotten-export': { logLevel: 'warning', addToApiReportFile: true },
        // {@link} targets are for editors; nothing here resolves them.
        'ae-unresolved-link': { logLevel: 'none' },
        // One line per undocumented member would bury the real findings; the report marks them "(undocumented)" anyway.
        'ae-undocumented': { logLevel: 'none' },
      },
    },
  };
}

function showDiff(expected, actual) {
  const { stdout } = spawnSync('git', ['diff', '--no-index', '--no-color', '--', relative(root, expected), relative(root, actual)], {
    cwd: root,
    encoding: 'utf8',
  });
  console.log(stdout.trimEnd());
}

const started = performance.now();
const problems = [];
let reports = 0;
rmSync(tempRoot, { recursive: true, force: true });

for (const pkg of publicPackages()) {
  const reportFolder = join(root, pkg.dir, 'api');
  const expectedFiles = new Set();
  for (const entry of entriesOf(pkg)) {
    const label = `${pkg.name}${entry.subpath === '.' ? '' : entry.subpath.slice(1)}`;
    if (!existsSync(join(root, pkg.dir, entry.types))) {
      throw new Error(`${pkg.dir}/${entry.types} is missing: run \`pnpm build\` first`);
    }
    const reportFile = `${entry.reportName}.api.md`;
    expectedFiles.add(reportFile);
    const extractorConfig = ExtractorConfig.prepare({
      configObject: configFor(pkg, entry),
      configObjectFullPath: undefined,
      packageJsonFullPath: join(root, pkg.dir, 'package.json'),
    });
    if (local) mkdirSync(reportFolder, { recursive: true });
    const messages = [];
    const result = Extractor.invoke(extractorConfig, {
      localBuild: local,
      messageCallback(message) {
        // Our own summary replaces API Extractor's chatter; warnings and errors are kept.
        if (message.logLevel === ExtractorLogLevel.Warning || message.logLevel === ExtractorLogLevel.Error) {
          // console-* are API Extractor's own notes about the report file, which the summary covers.
          if (!String(message.messageId).startsWith('console-')) messages.push(message.formatMessageWithLocation(root));
        }
        message.handled = true;
      },
    });
    reports++;
    const checkedIn = join(reportFolder, reportFile);
    const written = join(extractorConfig.reportTempFolder, reportFile);
    const where = relative(root, checkedIn);
    for (const text of messages) console.log(`  ${text}`);
    if (result.errorCount > 0 || messages.length > 0) {
      problems.push(`${label}: API Extractor reported ${result.errorCount} error(s), ${messages.length} message(s) (above)`);
    }
    if (result.apiReportChanged) {
      if (local) {
        console.log(`updated  ${where}`);
      } else if (!existsSync(checkedIn)) {
        problems.push(`${label}: ${where} is missing`);
      } else {
        showDiff(checkedIn, written);
        problems.push(`${label}: the public API differs from ${where} (diff above)`);
      }
    } else {
      console.log(`ok       ${where}`);
    }
  }
  // Reports of entries that no longer exist.
  const present = existsSync(reportFolder) ? readdirSync(reportFolder).filter((file) => file.endsWith('.api.md')) : [];
  for (const file of present.filter((file) => !expectedFiles.has(file))) {
    const where = relative(root, join(reportFolder, file));
    if (local) {
      rmSync(join(reportFolder, file));
      console.log(`deleted  ${where} (no such entry in exports)`);
    } else {
      problems.push(`${pkg.name}: ${where} belongs to no entry in its exports map`);
    }
  }
}

const seconds = ((performance.now() - started) / 1000).toFixed(1);
if (problems.length > 0) {
  console.log(`\n${problems.map((problem) => `FAIL  ${problem}`).join('\n')}`);
  if (!local) {
    console.log('\nIf the change is intended, `npx pnpm@10.34.9 api` (build, then rewrite the reports) and commit packages/*/api/.');
  }
  process.exitCode = 1;
} else {
  console.log(`${reports} API reports ${local ? 'written' : 'match'} (${seconds} s)`);
}
