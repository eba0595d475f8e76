import { getCorrelationId } from '@loopsight/context';
import type { PromiseReport, StallReport } from '@loopsight/core';
import { LoopsightModule, Monitor } from '@loopsight/nestjs';
import {
  type ArgumentsHost,
  type CallHandler,
  type CanActivate,
  Catch,
  Controller,
  type ExceptionFilter,
  type ExecutionContext,
  Get,
  HttpException,
  type INestApplication,
  type NestInterceptor,
  Query,
  UseFilters,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Platform, startNest } from '../../../test-support/nest/apps.js';
import { audit, blockInController, blockInFilter, blockInGuard, blockInInterceptor } from './blockers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const query = (context: ExecutionContext | ArgumentsHost) =>
  (context.switchToHttp().getRequest() as { query: Record<string, string | undefined> }).query;

class SlowGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    blockInGuard(query(context).guard);
    return true;
  }
}

class SlowInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler) {
    blockInInterceptor(query(context).interceptor);
    return next.handle();
  }
}

@Catch(HttpException)
class SlowFilter implements ExceptionFilter {
  catch(exception: HttpException, host: ArgumentsHost) {
    blockInFilter(query(host).filter);
    const http = host.switchToHttp();
    const response = http.getResponse() as { status?: unknown; code?: unknown };
    const body = { error: exception.message, idInFilter: getCorrelationId() };
    // Express's response has status(), Fastify's reply code(): the filter runs on both.
    if (typeof response.code === 'function') (response as { code(s: number): { send(b: unknown): void } }).code(418).send(body);
    else (response as unknown as { status(s: number): { json(b: unknown): void } }).status(418).json(body);
  }
}

@Controller('pipeline')
@UseGuards(SlowGuard)
@UseInterceptors(SlowInterceptor)
@UseFilters(SlowFilter)
class PipelineController {
  @Get(':kind') run(@Query('controller') ms: string, @Query('fail') fail: string) {
    blockInController(ms);
    if (fail) throw new HttpException('refused', 400);
    return { id: getCorrelationId() };
  }
}

@Controller('floating')
class FloatingController {
  @Get() float() {
    void audit();
    return { id: getCorrelationId() };
  }
}

describe.each<Platform>(['express', 'fastify'])('nest 11 %s: guards, interceptors, filters', (platform) => {
  let app: INestApplication;
  let url: string;
  const stalls: StallReport[] = [];
  const promises: PromiseReport[] = [];
  beforeAll(async () => {
    app = await startNest(platform, {
      // Every stall with its stack: the default 10 a minute are shared by both platforms' apps (one
      // watchdog per process), their retries and what a loaded machine adds (rate-limited once in CI).
      imports: [
        LoopsightModule.forRoot({
          promises: { mode: 'full', leakAfterMs: 2_000 },
          loopLag: { maxStacksPerMinute: 1000 },
          onReport: () => {},
        }),
      ],
      controllers: [PipelineController, FloatingController],
    });
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    const monitor = app.get(Monitor);
    monitor.on('stall', (r) => stalls.push(r));
    monitor.on('promise', (r) => promises.push(r));
    // Let the watchdog's worker come up.
    await sleep(300);
  });
  afterAll(() => app.close());

  const where = {
    guard: ['blockInGuard', 'canActivate'],
    interceptor: ['blockInInterceptor', 'intercept'],
    controller: ['blockInController', 'run'],
    filter: ['blockInFilter', 'catch'],
  } as const;

  for (const [place, [culprit, caller]] of Object.entries(where)) {
    // A loaded machine can wake the watchdog late (a late pause names no request): tried again then.
    it(`attributes a 350 ms block in the ${place} to its request, once, with the route`, { retry: 2 }, async () => {
      stalls.length = 0;
      const id = `stall-${place}-${platform}`;
      const fail = place === 'filter' ? '&fail=1' : '';
      const res = await request(`${url}/pipeline/x?${place}=350${fail}`, { headers: { 'x-request-id': id } });
      const body = (await res.body.json()) as { id?: string; idInFilter?: string };
      expect(res.statusCode).toBe(place === 'filter' ? 418 : 200);
      expect(body.id ?? body.idInFilter).toBe(id);
      await sleep(300);
      const ours = stalls.filter((r) => r.stack.some((f) => f.functionName === culprit));
      expect(ours, JSON.stringify(stalls)).toHaveLength(1);
      const [report] = ours as [StallReport];
      expect(report.durationMs).toBeGreaterThanOrEqual(280);
      expect(report.stackSource).toBe('pause');
      expect(report.culprit).toMatchObject({ functionName: culprit });
      expect(report.culprit?.url).toMatch(/nestjs\/test\/blockers\.ts$/);
      expect(report.stack.map((f) => f.functionName)).toContain(caller);
      expect(report.request).toMatchObject({ correlationId: id, method: 'GET', route: '/pipeline/:kind' });
    });
  }

  it('reports a floating promise with the request that made it', async () => {
    promises.length = 0;
    const res = await request(`${url}/floating`, { headers: { 'x-request-id': `float-${platform}` } });
    expect(await res.body.json()).toEqual({ id: `float-${platform}` });
    await sleep(1_000);
    const floating = promises.filter((r) => r.kind === 'floating');
    expect(floating, JSON.stringify(promises)).toHaveLength(1);
    expect(floating[0]).toMatchObject({ request: { correlationId: `float-${platform}`, route: '/floating' } });
    expect(floating[0]?.culprit).toMatchObject({ functionName: 'audit' });
  });
});
