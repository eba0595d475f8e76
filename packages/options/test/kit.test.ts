import {
  array,
  boolean,
  CODES,
  checkKeys,
  closestName,
  func,
  isLoopsightError,
  LoopsightError,
  LoopsightRangeError,
  LoopsightTypeError,
  number,
  object,
  oneOf,
  positive,
  resolveShape,
  string,
  warning,
  warningKey,
} from '@loopsight/options';
import { describe, expect, it } from 'vitest';

describe('errors', () => {
  it('carry a code and a path, are TypeErrors or RangeErrors where they say so, and all are LoopsightErrors', () => {
    const type = new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_OPTION', 'loopsight: options.x must be 1', { path: 'x', accepted: '1' });
    const range = new LoopsightRangeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', 'out of range');
    const plain = new LoopsightError('ERR_LOOPSIGHT_UNSUPPORTED_RUNTIME', 'no hooks');
    expect(type).toBeInstanceOf(TypeError);
    expect(range).toBeInstanceOf(RangeError);
    for (const error of [type, range, plain]) {
      expect(error).toBeInstanceOf(LoopsightError);
      expect(error).toBeInstanceOf(Error);
      expect(isLoopsightError(error)).toBe(true);
    }
    expect(type).toMatchObject({ name: 'TypeError', code: 'ERR_LOOPSIGHT_INVALID_OPTION', path: 'x', accepted: '1' });
    expect(plain.name).toBe('LoopsightError');
    expect(new Error('x')).not.toBeInstanceOf(LoopsightError);
    expect(isLoopsightError(Object.assign(new Error('x'), { code: 'ERR_LOOPSIGHT_INVALID_OPTION' }))).toBe(false);
  });

  it('a warning carries its code, site and cause, and is reported once per code and site, not per text', () => {
    const cause = new Error('registry clash on loopsight_x');
    const w = warning('LOOPSIGHT_EXPORTER_FAILED', cause, { site: 'prometheus:stall' });
    expect(w).toMatchObject({
      name: 'LoopsightWarning',
      code: 'LOOPSIGHT_EXPORTER_FAILED',
      site: 'prometheus:stall',
      message: cause.message,
    });
    expect(w.cause).toBe(cause);
    expect(warning('LOOPSIGHT_WARNING', w)).toBe(w);
    const other = warning('LOOPSIGHT_EXPORTER_FAILED', new Error('another text'), { site: 'prometheus:stall' });
    expect(warningKey('a', w)).toBe(warningKey('b', other));
    expect(warningKey('a', w)).not.toBe(warningKey('a', warning('LOOPSIGHT_EXPORTER_FAILED', cause, { site: 'otel:stall' })));
    // Without a code, the text it was reported with is all there is.
    expect(warningKey('a', cause)).not.toBe(warningKey('b', cause));
  });

  it('the table of codes is frozen, one line each', () => {
    expect(Object.isFrozen(CODES)).toBe(true);
    for (const [code, meaning] of Object.entries(CODES)) {
      expect(code).toMatch(/^(ERR_)?LOOPSIGHT_[A-Z_]+$/);
      expect(meaning).not.toMatch(/\n/);
    }
  });
});

describe('the options kit', () => {
  const shape = {
    thresholdMs: number({ min: 10, max: 1000, default: 100 }),
    mode: oneOf(['sampled', 'full'] as const, 'sampled'),
    stacks: boolean(true),
    depth: positive({ integer: true, max: 200, default: 10 }),
    onStall: func<() => void>(),
    routes: array(string({ pattern: /^\//, accepted: 'a route starting with /' }), { max: 2 }),
    nested: object({ intervalMs: number({ integer: true, min: 1, max: 10, default: 5 }) }),
  };

  it('resolves defaults, freezes the result', () => {
    const resolved = resolveShape(shape, undefined);
    expect(resolved).toEqual({
      thresholdMs: 100,
      mode: 'sampled',
      stacks: true,
      depth: 10,
      onStall: undefined,
      routes: undefined,
      nested: { intervalMs: 5 },
    });
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(resolveShape(shape, { routes: ['/a'], nested: { intervalMs: 2 } })).toMatchObject({ routes: ['/a'], nested: { intervalMs: 2 } });
  });

  it.each([
    [{ thresholdMs: 5 }, 'thresholdMs', 'loopsight: options.thresholdMs must be a number from 10 to 1000 (got 5)'],
    [{ mode: 'ful' }, 'mode', `loopsight: options.mode must be one of 'sampled', 'full' (got "ful")`],
    [{ stacks: 'yes' }, 'stacks', 'loopsight: options.stacks must be true or false (got "yes")'],
    [{ depth: 1.5 }, 'depth', 'loopsight: options.depth must be a positive integer up to 200 (got 1.5)'],
    [{ onStall: 1 }, 'onStall', 'loopsight: options.onStall must be a function (got 1)'],
    [{ routes: ['x'] }, 'routes[0]', 'loopsight: options.routes[0] must be a route starting with / (got "x")'],
    [{ routes: ['/a', '/b', '/c'] }, 'routes', 'must be an array of at most 2 items'],
    [{ nested: { intervalMs: 0 } }, 'nested.intervalMs', 'loopsight: options.nested.intervalMs must be an integer from 1 to 10 (got 0)'],
    [{ nested: 3 }, 'nested', 'loopsight: options.nested must be an object (got 3)'],
  ])('refuses %j naming the full path and what it accepts', (options, path, message) => {
    expect(() => resolveShape(shape, options)).toThrow(message);
    expect(() => resolveShape(shape, options)).toThrow(expect.objectContaining({ code: 'ERR_LOOPSIGHT_INVALID_OPTION', path }));
  });

  it('refuses an unknown key with the closest known name, at any depth', () => {
    expect(() => resolveShape(shape, { treshold: 1 })).toThrow(
      "loopsight: unknown option options.treshold; accepted: thresholdMs, mode, stacks, depth, onStall, routes, nested; did you mean 'thresholdMs'?",
    );
    expect(() => resolveShape(shape, { nested: { interval: 1 } })).toThrow(
      expect.objectContaining({
        name: 'TypeError',
        code: 'ERR_LOOPSIGHT_UNKNOWN_OPTION',
        path: 'nested.interval',
        message: expect.stringMatching(/did you mean 'intervalMs'\?$/),
      }),
    );
    // Nothing close: no guess.
    expect(() => checkKeys('', { zzzzzz: 1 }, ['thresholdMs'])).toThrow(/accepted: thresholdMs$/);
  });

  it('suggests by case, separators, typos and a part of a longer name', () => {
    const known = ['stallThresholdMs', 'captureStacks', 'maxStacksPerMinute', 'profiler'];
    expect(closestName('stallthresholdms', known)).toBe('stallThresholdMs');
    expect(closestName('stall_threshold_ms', known)).toBe('stallThresholdMs');
    expect(closestName('captureStack', known)).toBe('captureStacks');
    expect(closestName('treshold', known)).toBe('stallThresholdMs');
    expect(closestName('proflier', known)).toBe('profiler');
    expect(closestName('port', known)).toBeUndefined();
    expect(closestName('', known)).toBeUndefined();
  });

  it('never quotes a whole object or a long string in a message', () => {
    const secret = 's3cr3t'.repeat(20);
    expect(() => resolveShape(shape, { mode: secret })).toThrow(/\(got "(s3cr3t){6}s3cr…"\)$/);
    expect(() => resolveShape(shape, { stacks: { password: secret } })).toThrow(/\(got an object\)$/);
  });
});
