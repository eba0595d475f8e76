// Source-mapped stack frames. createSourceMapper is sent to the watchdog's worker as source text
// (like workerMain): self-contained, no imports or module-level names, only `load` of node builtins.
// The worker maps stall stacks after the main thread runs again; the main thread maps the few
// frames of a profile or promise report the same way, lazily, when such a report is made.

import { createRequire } from 'node:module';
import type { WatchdogStackFrame } from './types.js';

/** How much a mapper reads and keeps. */
export interface SourceMapLimits {
  /** A script or map file larger than this is not read, bytes. */
  maxFileBytes: number;
  /** A map whose `mappings` is longer than this is not decoded (decoding takes ≈ 28 bytes of heap per character). */
  maxMappingsChars: number;
  /** Decoded maps kept, by their `mappings` length in all. */
  maxCachedChars: number;
  /** Decoded maps kept, in number (scripts without a map count too). */
  maxCachedScripts: number;
}

export const SOURCE_MAP_LIMITS: SourceMapLimits = Object.freeze({
  maxFileBytes: 16 * 1024 * 1024,
  // Decoding takes ≈ 28 bytes of heap per character of mappings: ≈ 7 MB for the largest map read,
  // and the cache keeps about that much in all (plus the map just read).
  maxMappingsChars: 256 * 1024,
  maxCachedChars: 256 * 1024,
  maxCachedScripts: 256,
});

/**
 * Maps a frame to its original source, or returns it as it is. `sourceMapURL` is V8's reading of
 * the script's `//# sourceMappingURL=` when known (the inspector's `Debugger.scriptParsed`); else
 * the script file is read for it. `onSkip` hears once per script why its frames stay generated.
 */
export type FrameMapper = (frame: WatchdogStackFrame, sourceMapURL?: string) => WatchdogStackFrame;

export function createSourceMapper(load: NodeJS.Require, limits: SourceMapLimits, onSkip: (url: string, why: string) => void): FrameMapper {
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

  // biome-ignore lint/suspicious/noExplicitAny: a SourceMap.
  type Entry = { map: any; base: string; chars: number; asPath: boolean } | null;
  const cache = new Map<string, Entry>();
  let cachedChars = 0;

  const readSmall = (file: string | URL): string | undefined => {
    const size = fs.statSync(file).size;
    return size > limits.maxFileBytes ? undefined : fs.readFileSync(file, 'utf8');
  };

  const load1 = (url: string, sourceMapURL: string | undefined): Entry => {
    const scriptUrl = url.startsWith('file:') ? url : url.startsWith('/') ? pathToFileURL(url).href : undefined;
    if (!scriptUrl || !SourceMap) return null;
    let ref = sourceMapURL;
    if (!ref) {
      const text = readSmall(new URL(scriptUrl));
      if (text === undefined) return null;
      // The comment is the last line of the script (bundlers may add a newline after it).
      ref = COMMENT.exec(text.slice(-Math.min(text.length, 64 * 1024)).trimEnd())?.[1] ?? COMMENT.exec(text.trimEnd())?.[1];
    }
    if (!ref) return null;
    let json: string | undefined;
    let base = scriptUrl;
    const data = DATA.exec(ref);
    if (data) {
      const body = ref.slice(data[0].length);
      json = data[1] ? Buffer.from(body, 'base64').toString('utf8') : decodeURIComponent(body);
    } else {
      const mapUrl = new URL(ref, scriptUrl);
      if (mapUrl.protocol !== 'file:') return null;
      json = readSmall(mapUrl);
      if (json === undefined) {
        onSkip(url, `its source map is larger than ${limits.maxFileBytes} bytes`);
        return null;
      }
      base = mapUrl.href;
    }
    const payload = JSON.parse(json) as { mappings?: unknown; sourcesContent?: unknown };
    if (typeof payload.mappings !== 'string') return null;
    if (payload.mappings.length > limits.maxMappingsChars) {
      onSkip(url, `its source map has ${payload.mappings.length} characters of mappings, more than ${limits.maxMappingsChars}`);
      return null;
    }
    // Only positions are needed: the sources' text is not kept.
    payload.sourcesContent = undefined;
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
    let entry: Entry = null;
    try {
      entry = load1(url, sourceMapURL);
    } catch (error) {
      onSkip(url, `its source map could not be read (${error instanceof Error ? error.message : String(error)})`);
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

/** The main thread's maps: smaller, since decoding one holds the loop (≈ 15 ms for the largest). */
const MAIN_THREAD_LIMITS: SourceMapLimits = Object.freeze({
  ...SOURCE_MAP_LIMITS,
  maxMappingsChars: 128 * 1024,
  maxCachedChars: 128 * 1024,
});

let mainThread: FrameMapper | undefined;

/**
 * Maps frames through their scripts' source maps (tsc, tsup, esbuild, swc output; inline or in a
 * `.map` file), keeping the generated location in `generated`; frames without a map come back as
 * they are. Maps are read once and cached (bounded: SOURCE_MAP_LIMITS, with at most 128 K
 * characters of mappings per map on the main thread). For the few frames of a report, not for a
 * hot path.
 */
export function mapStackFrames<F extends WatchdogStackFrame>(frames: readonly F[]): WatchdogStackFrame[] {
  mainThread ??= createSourceMapper(createRequire(`${process.cwd()}/`), MAIN_THREAD_LIMITS, () => {});
  const map = mainThread;
  return frames.map((frame) => map(frame));
}
