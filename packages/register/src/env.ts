import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { MonitorOptions } from '@loopsight/core';
import type { OPTION_RULES } from '@loopsight/core/adapter';
import type { LoopsightCode } from '@loopsight/options';
import { load } from './load.js';

/** The preload's configuration: monitor options, and what the preload itself starts. */
export interface RegisterConfig {
  readonly enabled: boolean;
  readonly monitor: MonitorOptions;
  /** Serve Prometheus metrics on this port (0: any free port). Undefined: no metrics server. */
  readonly metrics: { readonly port: number; readonly host: string | undefined; readonly path: string } | undefined;
  /** 'auto': attach the OpenTelemetry exporter once an SDK has registered a global provider. */
  readonly otel: 'auto' | 'off';
}

type Env = Readonly<Record<string, string | undefined>>;
type Warn = (line: string) => void;

/** What a bad value's line shows of it: bounded and escaped, since the environment is not ours. */
function shown(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

export const BOOLEANS: Record<string, boolean> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
  on: true,
  off: false,
};

/** A warning line of the preload: the text, then its code (docs/errors.md). */
export function coded(code: LoopsightCode, line: string): string {
  return `${line} [${code}]`;
}

/** A variable's value, turned into an option by `parse`; a refusal is one line and the default. */
function read<T>(env: Env, name: string, warn: Warn, parse: (raw: string) => T | { refused: string }): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const parsed = parse(raw.trim());
  if (typeof parsed === 'object' && parsed !== null && 'refused' in parsed) {
    warn(
      coded(
        'LOOPSIGHT_ENV_IGNORED',
        `loopsight: ${name}=${shown(raw)} ignored: ${(parsed as { refused: string }).refused}; the default applies`,
      ),
    );
    return undefined;
  }
  return parsed as T;
}

const refused = (why: string) => ({ refused: why });

function bool(raw: string): boolean | { refused: string } {
  const value = BOOLEANS[raw.toLowerCase()];
  return value ?? refused('must be true or false');
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string): T | { refused: string } =>
    (values as readonly string[]).includes(raw) ? (raw as T) : refused(`must be one of ${values.join(', ')}`);
}

function integer(min: number, max: number) {
  return (raw: string): number | { refused: string } => {
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    return Number.isSafeInteger(value) && value >= min && value <= max ? value : refused(`must be an integer from ${min} to ${max}`);
  };
}

type OptionPath = keyof typeof OPTION_RULES;

/** Why core's rule for `path` refuses `value`, in the words of its error (never the value), or undefined. */
function refusalBy(path: OptionPath, value: unknown): string | undefined {
  try {
    load.adapterKit().OPTION_RULES[path].resolve(value, path);
    return undefined;
  } catch (error) {
    return load.options().isLoopsightError(error) && error.accepted !== undefined
      ? `options.${path} must be ${error.accepted}`
      : `options.${path} is refused`;
  }
}

/** A value core checks: by the rule of the option it sets (`path`), which `toOptions` places. */
function checkedBy<T>(parse: (raw: string) => T | { refused: string }, path: OptionPath, toOptions: (value: T) => MonitorOptions) {
  return (raw: string): MonitorOptions | { refused: string } => {
    const value = parse(raw);
    if (typeof value === 'object' && value !== null && 'refused' in value) return value;
    const why = refusalBy(path, value);
    return why === undefined ? toOptions(value as T) : refused(why);
  };
}

const HOST = /^[A-Za-z0-9.:-]{1,253}$/;
const PATH = /^\/[A-Za-z0-9._~/-]{0,255}$/;

/** A LOOPSIGHT_CONFIG file larger than this is not read, bytes: a file of every option is under 2 KB. */
const MAX_CONFIG_BYTES = 64 * 1024;

/**
 * The config file's text, or why it is not read: a regular file only (a path stat first, so a
 * FIFO or device is never opened, then the descriptor's fstat), opened without blocking, at most
 * MAX_CONFIG_BYTES, and only as many bytes as fstat says (a /proc file says 0). The same rule as
 * loop-lag's source maps (sourcemap.ts), written twice for now: that reader lives inside
 * createSourceMapper, whose body is sent to the watchdog thread as source text and can call nothing
 * outside it. One reader once thread code is ordinary modules.
 */
function readConfigFile(path: string): string | { refused: string } {
  try {
    const before = statSync(path, { throwIfNoEntry: false });
    if (!before) return refused('the file does not exist');
    if (!before.isFile()) return refused('it is not a regular file');
    const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0));
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) return refused('it is not a regular file');
      if (stat.size === 0) return refused('the file is empty, or its size is unknown (/proc)');
      if (stat.size > MAX_CONFIG_BYTES) return refused(`the file is larger than ${MAX_CONFIG_BYTES} bytes`);
      const buffer = Buffer.alloc(stat.size);
      let got = 0;
      while (got < buffer.length) {
        const n = readSync(fd, buffer, got, buffer.length - got, got);
        if (n === 0) break;
        got += n;
      }
      return buffer.toString('utf8', 0, got);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    // A system error's code only: its message is ours to trust no more than the file.
    const code = (error as { code?: unknown } | null)?.code;
    return refused(typeof code === 'string' && /^E[A-Z]+$/.test(code) ? `it cannot be read (${code})` : 'it cannot be read');
  }
}

/**
 * Why core refuses the file's options, without what the file holds: core's error names the value it
 * got and an unknown key, and a file named by mistake (a secrets file) must not reach stderr. Its
 * code, path and accepted values are enough.
 */
function refusalOfFile(options: MonitorOptions): string | undefined {
  try {
    load.adapterKit().resolveOptions(options);
    return undefined;
  } catch (error) {
    if (!load.options().isLoopsightError(error)) return 'its options are refused';
    if (error.code === 'ERR_LOOPSIGHT_UNKNOWN_OPTION')
      return `the file has an option loopsight does not know (accepted: ${error.accepted})`;
    if (error.code === 'ERR_LOOPSIGHT_INVALID_OPTION' && error.path !== undefined) {
      return `${error.path ? `options.${error.path}` : 'options'} must be ${error.accepted}`;
    }
    return 'its options are refused';
  }
}

/** The options a JSON file gives (LOOPSIGHT_CONFIG): data only, never code. */
function fromFile(path: string, warn: Warn): MonitorOptions {
  const ignored = (why: string) => {
    warn(coded('LOOPSIGHT_CONFIG_IGNORED', `loopsight: LOOPSIGHT_CONFIG=${shown(path)} ignored: ${why}`));
    return {};
  };
  const text = readConfigFile(path);
  if (typeof text !== 'string') return ignored(text.refused);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the file.
    return ignored('the file is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return ignored('the file must hold a JSON object of monitor options');
  }
  const options = parsed as MonitorOptions;
  const why = refusalOfFile(options);
  if (why !== undefined) return ignored(why);
  return options;
}

/** Merges option groups one level deep: a variable overrides the file's value of that option only. */
function merge(into: MonitorOptions, from: MonitorOptions | undefined): MonitorOptions {
  if (from === undefined) return into;
  const out: Record<string, unknown> = { ...into };
  for (const [key, value] of Object.entries(from)) {
    const before = out[key];
    const bothObjects = typeof value === 'object' && value !== null && typeof before === 'object' && before !== null;
    out[key] = bothObjects && !Array.isArray(value) ? { ...before, ...value } : value;
  }
  return out as MonitorOptions;
}

/** Every variable the preload reads (docs/preload.md). */
const VARIABLES = Object.freeze([
  'LOOPSIGHT_ENABLED',
  'LOOPSIGHT_CONFIG',
  'LOOPSIGHT_LOOP_LAG',
  'LOOPSIGHT_STALL_THRESHOLD_MS',
  'LOOPSIGHT_CAPTURE_STACKS',
  'LOOPSIGHT_PROMISES',
  'LOOPSIGHT_HEADER',
  'LOOPSIGHT_ECHO',
  'LOOPSIGHT_PROPAGATE',
  'LOOPSIGHT_METRICS_PORT',
  'LOOPSIGHT_METRICS_HOST',
  'LOOPSIGHT_METRICS_PATH',
  'LOOPSIGHT_OTEL',
]);

const PREFIX = 'LOOPSIGHT_';
const SUFFIXES = VARIABLES.map((name) => name.slice(PREFIX.length));

/**
 * A LOOPSIGHT_* variable the preload does not read but one it does is close to (a typo) is said,
 * with the name meant. Other LOOPSIGHT_* names (tools of one's own) are left alone, and a name
 * that is not plain upper-case letters, digits and underscores is never shown.
 */
function warnUnknown(env: Env, warn: Warn): void {
  for (const name of Object.keys(env)) {
    if (!name.startsWith(PREFIX) || VARIABLES.includes(name) || !/^LOOPSIGHT_[A-Z0-9_]{1,64}$/.test(name)) continue;
    const meant = load.options().closestName(name.slice(PREFIX.length), SUFFIXES);
    if (meant === undefined) continue;
    warn(coded('LOOPSIGHT_ENV_UNKNOWN', `loopsight: ${name} is not a variable loopsight reads (ignored); did you mean ${PREFIX}${meant}?`));
  }
}

/**
 * Reads the LOOPSIGHT_* variables (docs/preload.md lists them). A bad value is one line through
 * `warn` and the default, never a throw: this runs before the application, in every process that
 * inherits NODE_OPTIONS.
 */
export function readConfig(env: Env, warn: Warn): RegisterConfig {
  warnUnknown(env, warn);
  const enabled = read(env, 'LOOPSIGHT_ENABLED', warn, bool) ?? true;
  const file = env.LOOPSIGHT_CONFIG?.trim();
  let monitor: MonitorOptions = file ? fromFile(file, warn) : {};
  const loopLag = read(env, 'LOOPSIGHT_LOOP_LAG', warn, bool);
  if (loopLag === false) monitor = { ...monitor, loopLag: false };
  else {
    const threshold = read(
      env,
      'LOOPSIGHT_STALL_THRESHOLD_MS',
      warn,
      checkedBy(integer(0, Number.MAX_SAFE_INTEGER), 'loopLag.stallThresholdMs', (stallThresholdMs) => ({ loopLag: { stallThresholdMs } })),
    );
    const stacks = read(
      env,
      'LOOPSIGHT_CAPTURE_STACKS',
      warn,
      checkedBy(bool, 'loopLag.captureStacks', (captureStacks) => ({ loopLag: { captureStacks } })),
    );
    monitor = merge(merge(monitor, threshold), stacks);
  }
  const mode = read(env, 'LOOPSIGHT_PROMISES', warn, oneOf(['off', 'sampled', 'full'] as const));
  if (mode !== undefined) monitor = merge(monitor, { promises: { mode } });
  const header = read(
    env,
    'LOOPSIGHT_HEADER',
    warn,
    checkedBy(String, 'correlation.header', (h) => ({ correlation: { header: h.toLowerCase() } })),
  );
  const echo = read(
    env,
    'LOOPSIGHT_ECHO',
    warn,
    checkedBy(bool, 'correlation.echo', (e) => ({ correlation: { echo: e } })),
  );
  const propagate = read(
    env,
    'LOOPSIGHT_PROPAGATE',
    warn,
    checkedBy(bool, 'correlation.propagate', (p) => ({ correlation: { propagate: p } })),
  );
  monitor = merge(merge(merge(monitor, header), echo), propagate);
  const port = read(env, 'LOOPSIGHT_METRICS_PORT', warn, integer(0, 65_535));
  const host = read(env, 'LOOPSIGHT_METRICS_HOST', warn, (raw) => (HOST.test(raw) ? raw : refused('must be a host name or IP address')));
  const path =
    read(env, 'LOOPSIGHT_METRICS_PATH', warn, (raw) => (PATH.test(raw) ? raw : refused("must be a URL path such as '/metrics'"))) ??
    '/metrics';
  const otel = read(env, 'LOOPSIGHT_OTEL', warn, oneOf(['auto', 'off'] as const)) ?? 'auto';
  return {
    enabled,
    monitor,
    metrics: port === undefined ? undefined : { port, host, path },
    otel,
  };
}
