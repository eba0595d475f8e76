import { Writable } from 'node:stream';
import { LoopsightModule } from '@loopsight/nestjs';
import { ConsoleLogger, Controller, Get, Logger } from '@nestjs/common';
import { LoggerModule, Logger as PinoNestLogger } from 'nestjs-pino';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Platform, startNest } from '../../../test-support/nest/apps.js';

@Controller('cats')
class CatsController {
  private readonly logger = new Logger('CatsController');

  @Get() list() {
    this.logger.log('listing cats');
    this.logger.error('no cat found', new Error('empty').stack);
    Logger.warn('said without a context');
    return [];
  }
}

// One stream for every app: nestjs-pino keeps the first app's pino logger in a static for the process.
const pinoLines: Record<string, unknown>[] = [];
const stream = new Writable({
  write(chunk, _encoding, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) pinoLines.push(JSON.parse(line));
    done();
  },
});

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const close of closers.splice(0)) await close();
});

describe.each<Platform>(['express', 'fastify'])('nest 11 %s: logs carry the correlation id', (platform) => {
  it("on Nest's own ConsoleLogger, with no code of the app's", async () => {
    const app = await startNest(
      platform,
      { imports: [LoopsightModule.forRoot({ promises: false, onReport: () => {} })], controllers: [CatsController] },
      undefined,
      undefined,
      { logger: new ConsoleLogger({ colors: false }) },
    );
    closers.push(() => app.close());
    const lines: string[] = [];
    for (const stream of [process.stdout, process.stderr]) {
      vi.spyOn(stream, 'write').mockImplementation((chunk) => {
        lines.push(String(chunk));
        return true;
      });
    }
    const res = await request(`${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/cats`, {
      headers: { 'x-request-id': `log-${platform}` },
    });
    await res.body.dump();
    vi.restoreAllMocks();
    const text = lines.join('');
    expect(text).toMatch(new RegExp(`LOG \\[CatsController log-${platform}\\] listing cats`));
    expect(text).toMatch(new RegExp(`ERROR \\[CatsController log-${platform}\\] no cat found`));
    expect(text).toContain('Error: empty');
    expect(text).toMatch(new RegExp(`WARN \\[log-${platform}\\] said without a context`));
  });

  it('on nestjs-pino, as req.id on every line of the request', async () => {
    pinoLines.length = 0;
    const app = await startNest(
      platform,
      {
        imports: [LoopsightModule.forRoot({ promises: false, onReport: () => {} }), LoggerModule.forRoot({ pinoHttp: [{}, stream] })],
        controllers: [CatsController],
      },
      undefined,
      (nest) => nest.useLogger(nest.get(PinoNestLogger)),
      { bufferLogs: true },
    );
    closers.push(() => app.close());
    const res = await request(`${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/cats`, {
      headers: { 'x-request-id': `pino-${platform}` },
    });
    await res.body.dump();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const ours = pinoLines.filter((l) => (l.req as { id?: unknown } | undefined)?.id === `pino-${platform}`);
    expect(ours.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['listing cats', 'no cat found', 'said without a context', 'request completed']),
    );
    expect(ours.find((l) => l.msg === 'listing cats')).toMatchObject({ context: 'CatsController', req: { url: '/cats' } });
  });
});
