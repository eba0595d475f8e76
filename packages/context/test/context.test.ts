import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import {
  correlationHeaders,
  enablePropagation,
  getCorrelationId,
  pinoMixin,
  traceIdOf,
  winstonFormat,
  withCorrelationId,
} from '@loopsight/context';
import { createMonitor, currentScope } from '@loopsight/core';
import { createHttpHandler } from '@loopsight/core/adapter';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import winston from 'winston';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('getCorrelationId / withCorrelationId', () => {
  it('is undefined outside any scope', async () => {
    expect(getCorrelationId()).toBeUndefined();
    await sleep(1);
    expect(getCorrelationId()).toBeUndefined();
    expect(correlationHeaders()).toEqual({});
  });

  it('keeps the id across awaits, timers and nested scopes', async () => {
    const seen = await withCorrelationId('outer', async () => {
      const ids = [getCorrelationId()];
      await sleep(2);
      ids.push(getCorrelationId());
      const inner = await withCorrelationId('inner', async () => {
        await sleep(1);
        return getCorrelationId();
      });
      ids.push(inner, getCorrelationId());
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          ids.push(getCorrelationId());
          resolve();
        }, 1),
      );
      return ids;
    });
    expect(seen).toEqual(['outer', 'outer', 'inner', 'outer', 'outer']);
    expect(getCorrelationId()).toBeUndefined();
  });

  it("keeps a monitor job's method and route, changing only the id", () => {
    const monitor = createMonitor();
    const scope = monitor.run({ correlationId: 'job', method: 'CRON', route: 'nightly' }, () =>
      withCorrelationId('child', () => ({ ...currentScope() })),
    );
    expect(scope).toMatchObject({ correlationId: 'child', method: 'CRON', route: 'nightly' });
  });

  it('replaces a non-string, empty or oversized id with a fresh one instead of throwing', () => {
    for (const id of [42 as unknown as string, '', 'x'.repeat(2000)]) {
      expect(withCorrelationId(id, () => getCorrelationId())).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(() => withCorrelationId('ok', 42 as never)).toThrow(/fn must be a function/);
  });

  it('gives headers for hand-made outbound calls', () => {
    expect(withCorrelationId('abc', () => correlationHeaders())).toEqual({ 'x-request-id': 'abc' });
    const disable = enablePropagation('x-correlation-id');
    try {
      expect(withCorrelationId('abc', () => correlationHeaders())).toEqual({ 'x-correlation-id': 'abc' });
    } finally {
      disable();
    }
  });

  it('names the id with the monitor’s correlation.header, even with propagation off', async () => {
    const monitor = createMonitor({ correlation: { header: 'x-trace-id', propagate: false }, loopLag: false, promises: false });
    monitor.start();
    try {
      expect(withCorrelationId('abc', () => correlationHeaders())).toEqual({ 'x-trace-id': 'abc' });
    } finally {
      await monitor.stop();
    }
    expect(withCorrelationId('abc', () => correlationHeaders())).toEqual({ 'x-request-id': 'abc' });
  });
});

describe('traceIdOf', () => {
  const id = '4bf92f3577b34da6a3ce929d0e0e4736';
  it.each([
    ['version 00', `00-${id}-00f067aa0ba902b7-01`, id],
    ['a later version with more fields', `01-${id}-00f067aa0ba902b7-01-future`, id],
    ['version 00 with more fields', `00-${id}-00f067aa0ba902b7-01-extra`, undefined],
    ['version ff', `ff-${id}-00f067aa0ba902b7-01`, undefined],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, undefined],
    ['an all-zero parent id', `00-${id}-0000000000000000-01`, undefined],
    ['upper-case hex', `00-${id.toUpperCase()}-00f067aa0ba902b7-01`, undefined],
    ['short fields', '00-abc-def-01', undefined],
    ['over 512 characters', `01-${id}-00f067aa0ba902b7-01${'-x'.repeat(300)}`, undefined],
  ])('%s', (_label, header, expected) => {
    expect(traceIdOf(header)).toBe(expected);
  });
});

describe('createHttpHandler with custom correlation options', () => {
  async function serve(options: Parameters<typeof createMonitor>[0]) {
    const warnings: string[] = [];
    const monitor = createMonitor({ ...options, logger: { warn: (m) => warnings.push(m) } });
    const handle = createHttpHandler(monitor, { route: () => undefined, propagate: enablePropagation });
    monitor.start();
    const server = http.createServer((req, res) => handle(req, res, null, () => res.end(getCorrelationId())));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const get = async (headers: Record<string, string> = {}) => {
      const res = await fetch(url, { headers });
      return { id: await res.text(), echoed: res.headers.get('x-request-id'), trace: res.headers.get('x-trace') };
    };
    const close = async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await monitor.stop();
    };
    return { get, close, warnings, monitor };
  }

  it('takes the first accepted header that validates, in order', async () => {
    const app = await serve({ correlation: { accept: ['x-a', 'x-b'], header: 'x-trace', traceparent: false } });
    try {
      expect(await app.get({ 'x-b': 'from-b', 'x-a': 'from-a' })).toMatchObject({ id: 'from-a', trace: 'from-a', echoed: null });
      expect(await app.get({ 'x-a': 'bad value', 'x-b': 'from-b' })).toMatchObject({ id: 'from-b' });
      expect(await app.get({ 'x-request-id': 'not-accepted' })).not.toMatchObject({ id: 'not-accepted' });
      expect(app.monitor.counters().correlationIdsRejected.invalid).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('with accept: [] trusts no traceparent either, unless traceparent is set to true', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const none = await serve({ correlation: { accept: [] } });
    try {
      const { id } = await none.get({ traceparent, 'x-request-id': 'from-client' });
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await none.close();
    }
    const asked = await serve({ correlation: { accept: [], traceparent: true } });
    try {
      expect((await asked.get({ traceparent })).id).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    } finally {
      await asked.close();
    }
  });

  it('uses a custom validator and generator, and does not echo when echo is false', async () => {
    let n = 0;
    const app = await serve({ correlation: { validate: /^ord-\d+$/, generate: () => `gen-${++n}`, echo: false } });
    try {
      expect(await app.get({ 'x-request-id': 'ord-42' })).toEqual({ id: 'ord-42', echoed: null, trace: null });
      expect(await app.get({ 'x-request-id': 'nope' })).toEqual({ id: 'gen-1', echoed: null, trace: null });
    } finally {
      await app.close();
    }
  });

  it('falls back to a UUID when the generator throws, and warns once', async () => {
    const app = await serve({
      correlation: {
        generate: () => {
          throw new Error('entropy ran out');
        },
      },
    });
    try {
      const first = await app.get();
      const second = await app.get();
      expect(first.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(second.id).not.toBe(first.id);
      expect(app.warnings).toEqual([expect.stringContaining('options.correlation.generate threw: entropy ran out')]);
    } finally {
      await app.close();
    }
  });
});

describe('enablePropagation', () => {
  it('wraps http.request only while enabled (Node before 23), and puts the originals back', () => {
    const original = http.request;
    const disableOne = enablePropagation();
    const disableTwo = enablePropagation();
    if (Number(process.versions.node.split('.')[0]) < 23) expect(http.request).not.toBe(original);
    disableOne();
    disableOne();
    if (Number(process.versions.node.split('.')[0]) < 23) expect(http.request).not.toBe(original);
    disableTwo();
    expect(http.request).toBe(original);
  });
});

describe('logger glue', () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk, _encoding, callback) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        callback();
      },
    });
    return { lines, stream };
  }

  it('pinoMixin adds correlationId inside a scope only', () => {
    const { lines, stream } = capture();
    const logger = pino({ mixin: pinoMixin() }, stream);
    logger.info('outside');
    withCorrelationId('pino-1', () => logger.info('inside'));
    withCorrelationId('pino-2', () => logger.info('again'));
    expect(lines.map((l) => [l.msg, l.correlationId])).toEqual([
      ['outside', undefined],
      ['inside', 'pino-1'],
      ['again', 'pino-2'],
    ]);
  });

  it('winstonFormat adds correlationId inside a scope and keeps one set by the caller', () => {
    const { lines, stream } = capture();
    const logger = winston.createLogger({
      format: winston.format.combine(winstonFormat(), winston.format.json()),
      transports: [new winston.transports.Stream({ stream })],
    });
    logger.info('outside');
    withCorrelationId('w-1', () => {
      logger.info('inside');
      logger.info('explicit', { correlationId: 'mine' });
    });
    expect(lines.map((l) => [l.message, l.correlationId])).toEqual([
      ['outside', undefined],
      ['inside', 'w-1'],
      ['explicit', 'mine'],
    ]);
  });
});
