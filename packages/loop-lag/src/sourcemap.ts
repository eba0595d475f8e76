// Source-mapped stack frames. The watchdog thread maps stall stacks after the stalled thread runs
// again (thread/entry.ts); the main thread maps the few frames of a profile or promise report the
// same way, lazily, when such a report is made. Node's builtins come through `load`, so that a
// build without one (node:module's SourceMap) still maps nothing rather than failing to load.

import { createRequire } from 'node:module';
import type { WatchdogStackFrame } from './types.js';

/** How much a mapper reads and keeps. */
export interface SourceMapLimits {
  /** A map file (or inline map) larger than this is not read, bytes. A script file is read from its end, at most this much. */
  maxFileBytes: number;
  /** A map whose `mappings` is longer than this is not decoded (decoding takes ≈ 28 bytes of heap per character). */
  maxMappingsChars: number;
  /** A map whose other kept fields (`sources`, `names`, `sections`, ...) take more JSON than this is not decoded, bytes. */
  maxFieldBytes: number;
  /** Decoded maps kept, by their `mappings` length in all. */
  maxCachedChars: number;
  /** Decoded maps kept, in number (scripts without a map count too). */
  maxCachedScripts: number;
}

export const SOURCE_MAP_LIMITS: SourceMapLimits = Object.freeze({
  maxFileBytes: 16 * 1024 * 1024,
  // Decoding takes ≈ 28 bytes of heap per character of mappings: ≈ 7 MB for the largest map read,
  // and the cache keeps about that much in all (plus the map just read). `sourcesContent` is never
  // parsed: a map is read into a buffer outside the heap and only the fields below are taken out.
  maxMappingsChars: 256 * 1024,
  maxFieldBytes: 1024 * 1024,
  maxCachedChars: 256 * 1024,
  maxCachedScripts: 256,
});

/**
 * Maps a frame to its original source, or returns it as it is. `sourceMapURL` is V8's reading of
 * the script's `//# sourceMappingURL=` when known (the inspector's `Debugger.scriptParsed`); else
 * the script file is read for it. `onSkip` hears once per script why its frames stay generated.
 */
export type FrameMapper = (frame: WatchdogStackFrame, sourceMapURL?: string) => WatchdogStackFrame;

/** What the watchdog thread learns of a mapper's work: a map being decoded, and maps never to decode. */
export interface SourceMapHooks {
  /** Called before a script's map is read and decoded (the watchdog thread tells the main thread). */
  onLoad?: (url: string) => void;
  /** Scripts whose map is not read: decoding it ended a watchdog thread before. */
  denied?: readonly string[];
  /**
   * Asked before a map not yet cached is read: false leaves the frame as it ran this time, and the
   * map is tried again the next time (the main thread's time budget per report).
   */
  mayLoad?: (url: string) => boolean;
}

/**
 * The rules for files (docs/loop-lag.md, "Source maps"): only regular files, opened without
 * blocking and checked on the descriptor; never more than `maxFileBytes` read; a script's map
 * file only when the script's own file on disk names it (code evaluated at run time, whose
 * `//# sourceURL` and `//# sourceMappingURL` say what they like, gets inline maps only) and it
 * ends in `.map`; nothing of a file is ever quoted in a message.
 */
export function createSourceMapper(
  load: NodeJS.Require,
  limits: SourceMapLimits,
  onSkip: (url: string, why: string) => void,
  hooks: SourceMapHooks = {},
): FrameMapper {
  // biome-ignore lint/suspicious/noExplicitAny: node:module's SourceMap, Node's own parser (the one --enable-source-maps uses).
  let SourceMap: any;
  try {
    SourceMap = load('node:module').SourceMap;
  } catch {
    SourceMap = undefined;
  }
  const fs = load('node:fs') as typeof import('node:fs');
  const { fileURLToPath, pathToFileURL } = load('node:url') as typeof import('node:url');
  const COMMENT = /\/\/[#@]\s*sourceMappingURL=([^\s'"]+)\s*$/;
  const DATA = /^data:application\/json[^,]*?(;base64)?,/;
  const MARK = 'sourceMappingURL=';
  /** How much of a script's end is read first for its comment. */
  const TAIL_BYTES = 64 * 1024;
  // O_NONBLOCK: opening a FIFO that slipped past the path check does not wait for a writer.
  const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0);
  const denied = new Set(hooks.denied ?? []);

  /** Why a file read or a parse failed, in words that quote nothing of the file. */
  class Refusal extends Error {}

  /**
   * At most `maxBytes` of a regular file: its last `maxBytes` when `tail`, else all of it or a
   * refusal when it is larger. A path stat first, so a device or FIFO is never opened (opening
   * some has effects); then the descriptor's own fstat, so a file swapped in between is caught.
   * Only as many bytes as fstat says are read: /proc files, which say 0, are refused.
   */
  const readFile = (file: URL, maxBytes: number, tail: boolean): Buffer => {
    const before = fs.statSync(file, { throwIfNoEntry: false });
    if (!before) throw new Refusal('it does not exist');
    if (!before.isFile()) throw new Refusal('it is not a regular file');
    const fd = fs.openSync(file, OPEN_FLAGS);
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new Refusal('it is not a regular file');
      if (stat.size === 0) throw new Refusal('it is empty, or a file whose size is unknown (/proc)');
      if (!tail && stat.size > maxBytes) throw new Refusal(`it is larger than ${maxBytes} bytes`);
      const length = Math.min(stat.size, maxBytes);
      const from = stat.size - length;
      const buffer = Buffer.allocUnsafeSlow(length);
      let got = 0;
      while (got < length) {
        const n = fs.readSync(fd, buffer, got, length - got, from + got);
        if (n === 0) break;
        got += n;
      }
      return buffer.subarray(0, got);
    } finally {
      fs.closeSync(fd);
    }
  };

  /**
   * The script's own `//# sourceMappingURL=`, read from the end of its file on disk. Nothing when
   * that file cannot be read: code evaluated at run time often names a file that is not there.
   */
  const commentOf = (scriptUrl: URL): string | undefined => {
    try {
      let bytes = readFile(scriptUrl, TAIL_BYTES, true);
      let at = bytes.lastIndexOf(MARK);
      // An inline map longer than the tail: the whole script, within the cap.
      if (at < 0 && bytes.length === TAIL_BYTES) {
        bytes = readFile(scriptUrl, limits.maxFileBytes, false);
        at = bytes.lastIndexOf(MARK);
      }
      if (at < 0) return undefined;
      return COMMENT.exec(bytes.toString('utf8', Math.max(0, at - 8)).trimEnd())?.[1];
    } catch {
      return undefined;
    }
  };

  const WANTED = new Set(['version', 'file', 'sourceRoot', 'sources', 'names', 'mappings', 'sections']);
  const NOT_A_MAP = 'it is not a JSON source map';

  /**
   * The fields a lookup needs, parsed one by one out of the map's bytes; everything else
   * (`sourcesContent`, most of a bundler's map) is stepped over, never turned into strings.
   */
  const pick = (b: Buffer, url: string): Record<string, unknown> | undefined => {
    const n = b.length;
    let i = 0;
    if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) i = 3;
    // The format allows a first line of `)]}'` against cross-site script inclusion.
    if (b[i] === 0x29) {
      const newline = b.indexOf(0x0a, i);
      if (newline < 0) throw new Refusal(NOT_A_MAP);
      i = newline + 1;
    }
    const space = () => {
      while (i < n && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
    };
    // Byte by byte: faster than indexOf of each quote in sources' text full of escaped quotes
    // (≈ 2.5 ms a MB, measured).
    const string = () => {
      i++;
      while (i < n) {
        const c = b[i];
        if (c === 0x22) {
          i++;
          return;
        }
        i += c === 0x5c ? 2 : 1;
      }
      throw new Refusal(NOT_A_MAP);
    };
    const value = () => {
      const c = b[i];
      if (c === 0x22) return string();
      if (c === 0x7b || c === 0x5b) {
        let depth = 0;
        while (i < n) {
          const d = b[i];
          if (d === 0x22) {
            string();
            continue;
          }
          if (d === 0x7b || d === 0x5b) depth++;
          else if (d === 0x7d || d === 0x5d) {
            depth--;
            if (depth === 0) {
              i++;
              return;
            }
          }
          i++;
        }
        throw new Refusal(NOT_A_MAP);
      }
      const start = i;
      while (i < n && b[i] !== 0x2c && b[i] !== 0x7d && b[i] !== 0x5d && (b[i] as number) > 0x20) i++;
      if (i === start) throw new Refusal(NOT_A_MAP);
    };
    space();
    if (b[i] !== 0x7b) throw new Refusal(NOT_A_MAP);
    i++;
    const out: Record<string, unknown> = {};
    let fieldBytes = 0;
    for (;;) {
      space();
      if (b[i] === 0x7d) return out;
      if (b[i] !== 0x22) throw new Refusal(NOT_A_MAP);
      const keyStart = i;
      string();
      const key = b.toString('latin1', keyStart + 1, i - 1);
      space();
      if (b[i] !== 0x3a) throw new Refusal(NOT_A_MAP);
      i++;
      space();
      const valueStart = i;
      value();
      if (WANTED.has(key)) {
        const bytes = i - valueStart;
        if (key === 'mappings' && bytes - 2 > limits.maxMappingsChars) {
          onSkip(url, `its source map has ${bytes - 2} characters of mappings, more than ${limits.maxMappingsChars}`);
          return undefined;
        }
        if (key !== 'mappings') fieldBytes += bytes;
        if (fieldBytes > limits.maxFieldBytes) {
          onSkip(url, `its source map's sources, names and sections take more than ${limits.maxFieldBytes} bytes`);
          return undefined;
        }
        try {
          out[key] = JSON.parse(b.toString('utf8', valueStart, i));
        } catch {
          throw new Refusal(NOT_A_MAP);
        }
      }
      space();
      if (b[i] === 0x2c) i++;
      else if (b[i] === 0x7d) return out;
      else throw new Refusal(NOT_A_MAP);
    }
  };

  // biome-ignore lint/suspicious/noExplicitAny: a SourceMap.
  type Entry = { map: any; base: string; chars: number; asPath: boolean } | null;
  const cache = new Map<string, Entry>();
  let cachedChars = 0;

  const load1 = (url: string, sourceMapURL: string | undefined): Entry => {
    const scriptUrl = url.startsWith('file:') ? url : url.startsWith('/') ? pathToFileURL(url).href : undefined;
    if (!scriptUrl || !SourceMap) return null;
    if (denied.has(url)) {
      onSkip(url, 'decoding its source map ended the watchdog thread before');
      return null;
    }
    // V8's reading is used for an inline map only: a map file is read only when the script's own
    // file names it, not when code evaluated at run time says so of itself.
    const ref = sourceMapURL && DATA.test(sourceMapURL) ? sourceMapURL : commentOf(new URL(scriptUrl));
    if (!ref) return null;
    let bytes: Buffer;
    let base = scriptUrl;
    const data = DATA.exec(ref);
    if (data) {
      const body = ref.slice(data[0].length);
      if (body.length > (limits.maxFileBytes * 4) / 3 + 4) {
        onSkip(url, `its inline source map is larger than ${limits.maxFileBytes} bytes`);
        return null;
      }
      bytes = data[1] ? Buffer.from(body, 'base64') : Buffer.from(decodeURIComponent(body), 'utf8');
    } else {
      const mapUrl = new URL(ref, scriptUrl);
      if (mapUrl.protocol !== 'file:' || !mapUrl.pathname.endsWith('.map')) {
        onSkip(url, 'its sourceMappingURL is not a .map file');
        return null;
      }
      bytes = readFile(mapUrl, limits.maxFileBytes, false);
      base = mapUrl.href;
    }
    const payload = pick(bytes, url);
    if (!payload) return null;
    if (typeof payload.mappings !== 'string') return null;
    return { map: new SourceMap(payload), base, chars: payload.mappings.length, asPath: !url.startsWith('file:') };
  };

  const entryOf = (url: string, sourceMapURL: string | undefined): Entry => {
    const cached = cache.get(url);
    if (cached !== undefined) {
      // Most recently used last, so that eviction drops the oldest.
      cache.delete(url);
      cache.set(url, cached);
      return cached;
    }
    if (hooks.mayLoad?.(url) === false) return null;
    let entry: Entry = null;
    try {
      hooks.onLoad?.(url);
      entry = load1(url, sourceMapURL);
    } catch (error) {
      // Only our own words, or a system error's code: a parser's message would quote the file.
      const code = (error as { code?: unknown } | null)?.code;
      const why =
        error instanceof Refusal ? error.message : typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : 'it could not be read';
      onSkip(url, `its source map was not used: ${why}`);
    }
    cache.set(url, entry);
    cachedChars += entry?.chars ?? 0;
    for (const [key, old] of cache) {
      if (cache.size <= limits.maxCachedScripts && cachedChars <= limits.maxCachedChars) break;
      if (key === url) continue;
      cache.delete(key);
      cachedChars -= old?.chars ?? 0;
    }
    return entry;
  };

  return (frame, sourceMapURL) => {
    if (frame.url === '' || frame.url.startsWith('node:') || frame.line < 1) return frame;
    const entry = entryOf(frame.url, sourceMapURL);
    if (!entry) return frame;
    try {
      const found = entry.map.findEntry(frame.line - 1, Math.max(0, frame.column - 1)) as {
        originalSource?: string;
        originalLine?: number;
        originalColumn?: number;
      };
      if (typeof found?.originalSource !== 'string' || typeof found.originalLine !== 'number') return frame;
      let source = new URL(found.originalSource, entry.base).href;
      if (entry.asPath && source.startsWith('file:')) source = fileURLToPath(source);
      return {
        functionName: frame.functionName,
        url: source,
        line: found.originalLine + 1,
        column: (found.originalColumn ?? 0) + 1,
        generated: { url: frame.url, line: frame.line, column: frame.column },
      };
    } catch {
      return frame;
    }
  };
}

/**
 * The main thread's maps: smaller, since reading and decoding one holds the loop (≈ 15 ms for the
 * largest: 4 MB read and stepped through, 128 K characters of mappings decoded).
 */
const MAIN_THREAD_LIMITS: SourceMapLimits = Object.freeze({
  ...SOURCE_MAP_LIMITS,
  maxFileBytes: 4 * 1024 * 1024,
  maxMappingsChars: 128 * 1024,
  maxFieldBytes: 512 * 1024,
  maxCachedChars: 128 * 1024,
});

/**
 * Main-thread time one report may spend reading and decoding maps not yet cached. A map started
 * is finished (≈ 15 ms at most, above), so a report holds the loop for about twice this at most;
 * the frames past it keep their generated location, and the next report reads their maps.
 */
const MAIN_THREAD_BUDGET_MS = 10;

// On globalThis, like the package's other state: the root entry and core's kit are separate files,
// and an app may load both builds; one cache per thread either way.
const MAPPER = Symbol.for('loopsight.loop-lag.main-thread-mapper.v2');
type MapperHolder = { [MAPPER]?: { map: FrameMapper; until: number } };

/**
 * Maps frames through their scripts' source maps (tsc, tsup, esbuild, swc output; inline or in a
 * `.map` file), keeping the generated location in `generated`; frames without a map come back as
 * they are. Maps are read once and cached (bounded: SOURCE_MAP_LIMITS, with at most 128 K
 * characters of mappings per map on the main thread). For the few frames of a report, not for a
 * hot path: on the main thread, within MAIN_THREAD_BUDGET_MS of new maps per call, and never a
 * map under `node_modules` (a library's frames are not a culprit, mapped or not; the watchdog
 * thread, which holds no loop, maps them in stall stacks).
 */
export function mapStackFrames<F extends WatchdogStackFrame>(frames: readonly F[]): WatchdogStackFrame[] {
  const holder = globalThis as MapperHolder;
  let state = holder[MAPPER];
  if (state === undefined) {
    const made = { map: (frame: WatchdogStackFrame) => frame, until: 0 };
    made.map = createSourceMapper(createRequire(`${process.cwd()}/`), MAIN_THREAD_LIMITS, () => {}, {
      mayLoad: (url) => !/[\\/]node_modules[\\/]/.test(url) && performance.now() < made.until,
    });
    state = holder[MAPPER] = made;
  }
  state.until = performance.now() + MAIN_THREAD_BUDGET_MS;
  return frames.map((frame) => state.map(frame));
}
