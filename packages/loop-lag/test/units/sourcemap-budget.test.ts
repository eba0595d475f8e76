// The main thread maps a report's frames within a budget (sourcemap.ts, mapStackFrames): a map it
// declines is not remembered as missing, so a later report maps the frame; and it never reads a
// map under node_modules. Seen before: the first promise reports of a process held the loop
// 300–440 ms reading loopsight's own maps on a loaded machine.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createSourceMapper, mapStackFrames, SOURCE_MAP_LIMITS } from '../../src/sourcemap.js';

const root = mkdtempSync(join(tmpdir(), 'loopsight-map-budget-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A one-line script whose `.map` file points its first column at line 7 of `original.ts`. */
function script(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.js`);
  writeFileSync(file, `function ${name}() {}\n//# sourceMappingURL=${name}.js.map\n`);
  // Generated 1:1 → original line 7, column 1 ("AAMA": column 0, source 0, line +6, column 0).
  writeFileSync(`${file}.map`, JSON.stringify({ version: 3, sources: ['original.ts'], names: [], mappings: 'AAMA' }));
  return pathToFileURL(file).href;
}

const frame = (url: string) => ({ functionName: 'f', url, line: 1, column: 1 });

describe('source maps on the main thread', () => {
  it('a map declined for now is read the next time it is allowed, not remembered as missing', () => {
    const url = script(join(root, 'declined'), 'later');
    let allow = false;
    const map = createSourceMapper(createRequire(import.meta.url), SOURCE_MAP_LIMITS, () => {}, { mayLoad: () => allow });
    expect(map(frame(url))).toEqual(frame(url));
    allow = true;
    const mapped = map(frame(url));
    expect(mapped.url).toMatch(/original\.ts$/);
    expect(mapped.line).toBe(7);
    expect(mapped.generated).toEqual({ url, line: 1, column: 1 });
  });

  it("maps the application's frames, not those under node_modules", () => {
    const app = script(join(root, 'app', 'src'), 'handler');
    const library = script(join(root, 'app', 'node_modules', 'lib'), 'handler');
    const [mine, theirs] = mapStackFrames([frame(app), frame(library)]);
    expect(mine?.url).toMatch(/app\/src\/original\.ts$/);
    expect(mine?.line).toBe(7);
    expect(theirs).toEqual(frame(library));
  });
});
