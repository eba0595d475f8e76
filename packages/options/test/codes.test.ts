import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CODES } from '@loopsight/options';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Code → meaning, from docs/errors.md's table. */
function documented(): Map<string, string> {
  const text = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  const rows = new Map<string, string>();
  for (const line of text.split('\n')) {
    const row = /^\| `((?:ERR_)?LOOPSIGHT_[A-Z_]+)` \| (.+?) \| /.exec(line);
    if (row) rows.set(row[1] as string, row[2] as string);
  }
  return rows;
}

// The stall watchdog's thread code, rewritten elsewhere: its warnings get codes there.
/**
 * The watchdog thread's own modules: their errors never reach a caller. They travel to the watched
 * thread as the text of a problem whose code and site come from protocol.ts's PROBLEMS table
 * (typed: an unknown problem does not compile), and are reported there as coded warnings.
 */
const THREAD_INTERNAL = /^(packages\/)?loop-lag\/src\/thread\//;

function sources(): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  const packages = join(root, 'packages');
  for (const pkg of readdirSync(packages)) {
    const walk = (dir: string, rel: string) => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        if (entry.isDirectory()) walk(join(dir, entry.name), `${rel}/${entry.name}`);
        else if (entry.name.endsWith('.ts')) out.push({ file: `${rel}/${entry.name}`, text: readFileSync(join(dir, entry.name), 'utf8') });
      }
    };
    walk(join(packages, pkg, 'src'), `${pkg}/src`);
  }
  return out;
}

// Where a code is given: an error made, a warning made, a preload line, a code property, a problem pair.
const USES = [
  /\bnew Loopsight(?:Type|Range)?Error\(\s*'([A-Z_]+)'/g,
  /\bwarning\(\s*'([A-Z_]+)'/g,
  /\bcoded\(\s*'([A-Z_]+)'/g,
  /\bcode: '([A-Z_]+)'/g,
  /'([A-Z_]+)' satisfies LoopsightCode/g,
  /\['((?:ERR_)?LOOPSIGHT_[A-Z_]+)', '[a-z]/g,
];

describe('the codes', () => {
  it('docs/errors.md lists exactly the codes of CODES, each with its meaning', () => {
    const rows = documented();
    expect([...rows.keys()].sort()).toEqual(Object.keys(CODES).sort());
    for (const [code, meaning] of Object.entries(CODES)) expect(rows.get(code), code).toBe(meaning);
  });

  it('every code the sources give is in the table', () => {
    const used = new Map<string, string[]>();
    for (const { file, text } of sources()) {
      for (const pattern of USES) {
        for (const match of text.matchAll(pattern)) {
          const code = match[1] as string;
          used.set(code, [...(used.get(code) ?? []), file]);
        }
      }
    }
    // The scan finds what it is meant to: a broken pattern would pass with nothing found.
    expect(used.size).toBeGreaterThan(15);
    expect([...used.keys()].filter((code) => !(code in CODES))).toEqual([]);
    expect(used.get('ERR_LOOPSIGHT_UNKNOWN_OPTION')).toBeDefined();
    expect(used.get('LOOPSIGHT_CALLBACK_THREW')?.length).toBeGreaterThan(3);
  });

  it('no error is thrown without a code in packages/*/src (the watchdog thread files aside)', () => {
    const uncoded: string[] = [];
    for (const { file, text } of sources()) {
      if (THREAD_INTERNAL.test(file)) continue;
      text.split('\n').forEach((line, i) => {
        if (/\bthrow new (Error|TypeError|RangeError)\(/.test(line)) uncoded.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(uncoded).toEqual([]);
  });

  it('no warning is reported without a code outside the watchdog thread files', () => {
    // A problem reported with its text (a literal) and a bare `error` or `new Error(`: passing on
    // what a caller gave (`reportError(what, error)`) is not a report of its own.
    const bare: string[] = [];
    for (const { file, text } of sources()) {
      if (THREAD_INTERNAL.test(file)) continue;
      text.split('\n').forEach((line, i) => {
        if (/(reportError|onError|#fail|#error|contain)\(\s*(['"`])[^'"`]*\2,\s*(error\b|new Error\()/.test(line))
          bare.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(bare).toEqual([]);
  });
});
