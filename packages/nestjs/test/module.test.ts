import { getCorrelationId } from '@loopsight/context';
import { createMonitor } from '@loopsight/core';
import { LoopsightModule, Monitor } from '@loopsight/nestjs';
import { Controller, Get, Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { type Platform, startNest } from '../../../test-support/nest/apps.js';

const CONFIG = Symbol('config');

@Module({ providers: [{ provide: CONFIG, useValue: { header: 'x-trace-id' } }], exports: [CONFIG] })
class ConfigModule {}

@Injectable()
class Jobs {
  constructor(@Inject(Monitor) private readonly monitor: Monitor) {}
  run(): string | undefined {
    return this.monitor.run({ correlationId: 'job-1', route: 'job:nightly' }, () => getCorrelationId());
  }
}

@Controller('jobs')
class JobsController {
  constructor(@Inject(Jobs) private readonly jobs: Jobs) {}
  @Get() get() {
    return { job: this.jobs.run(), request: getCorrelationId() };
  }
}

describe.each<Platform>(['express', 'fastify'])('nest 11 %s: LoopsightModule', (platform) => {
  it('takes its options from DI with forRootAsync, and injects the Monitor anywhere', async () => {
    const app = await startNest(platform, {
      imports: [
        LoopsightModule.forRootAsync({
          imports: [ConfigModule],
          inject: [CONFIG],
          useFactory: (config: { header: string }) => ({
            correlation: { header: config.header, accept: [config.header] },
            promises: false,
          }),
        }),
      ],
      controllers: [JobsController],
      providers: [Jobs],
    });
    const monitor = app.get(Monitor);
    try {
      const res = await request(`${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/jobs`, { headers: { 'x-trace-id': 'async-1' } });
      expect(res.headers['x-trace-id']).toBe('async-1');
      expect(await res.body.json()).toEqual({ job: 'job-1', request: 'async-1' });
      expect(monitor.running).toBe(true);
    } finally {
      await app.close();
    }
    expect(monitor.running).toBe(false);
  });

  it('leaves a shared monitor running when the app closes', async () => {
    const monitor = createMonitor({ promises: false });
    monitor.start();
    const app = await startNest(platform, { imports: [LoopsightModule.forRoot({ monitor })] });
    expect(app.get(Monitor)).toBe(monitor);
    await app.close();
    expect(monitor.running).toBe(true);
    await monitor.stop();
  });
});

describe('LoopsightModule', () => {
  it('serves jobs in a standalone application context, with no HTTP platform', async () => {
    @Module({ imports: [LoopsightModule.forRoot({ promises: false })], providers: [Jobs] })
    class Worker {}
    const app = await NestFactory.createApplicationContext(Worker, { logger: false, abortOnError: false });
    expect(app.get(Jobs).run()).toBe('job-1');
    const monitor = app.get(Monitor);
    await app.close();
    expect(monitor.running).toBe(false);
  });

  it('refuses bad options when the module is declared, naming the option', () => {
    expect(() => LoopsightModule.forRoot({ loopLag: { stallThresholdMs: -5 } })).toThrow(
      expect.objectContaining({
        name: 'TypeError',
        code: 'ERR_LOOPSIGHT_INVALID_OPTION',
        path: 'loopLag.stallThresholdMs',
        message: 'loopsight: options.loopLag.stallThresholdMs must be a positive number up to 3600000 (got -5)',
      }),
    );
    expect(() => LoopsightModule.forRootAsync({} as never)).toThrow(TypeError);
  });

  it('refuses bad options from forRootAsync when Nest creates the app', async () => {
    @Module({ imports: [LoopsightModule.forRootAsync({ useFactory: () => ({ promises: { mode: 'always' as never } }) })] })
    class Bad {}
    await expect(NestFactory.create(Bad, { logger: false, abortOnError: false })).rejects.toThrow(/options\.promises\.mode/);
  });
});
