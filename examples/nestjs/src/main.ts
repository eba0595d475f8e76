// loopsight on a Nest app: `npm start` (Express) or `npm run start:fastify`. It serves, sends
// itself three requests, prints what loopsight saw, and exits.
import 'reflect-metadata';
import { getCorrelationId } from '@loopsight/context';
import { LoopsightModule, Monitor } from '@loopsight/nestjs';
import { type CanActivate, Controller, Get, Injectable, Logger, Module, Param, UseGuards, VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';

/** A guard that checks a signature the slow way: 300 ms of JavaScript. */
@Injectable()
class SignatureGuard implements CanActivate {
  canActivate(): boolean {
    const end = performance.now() + 300;
    while (performance.now() < end);
    return true;
  }
}

@Controller({ path: 'cats', version: '1' })
class CatsController {
  private readonly logger = new Logger(CatsController.name);

  @Get(':id')
  async findOne(@Param('id') id: string) {
    this.logger.log(`looking up cat ${id}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
    return { id, correlationId: getCorrelationId() };
  }

  @Get(':id/invoice')
  @UseGuards(SignatureGuard)
  invoice(@Param('id') id: string) {
    return { id, total: 42 };
  }
}

@Module({
  // onReport: the stall lines below replace the default JSON line on stderr.
  imports: [LoopsightModule.forRoot({ loopLag: { stallThresholdMs: 100 }, promises: false, onReport: () => {} })],
  controllers: [CatsController],
})
class AppModule {}

async function main(): Promise<void> {
  const fastify = process.argv[2] === 'fastify';
  const app = await NestFactory.create(AppModule, fastify ? new FastifyAdapter() : new ExpressAdapter(), {
    forceCloseConnections: true,
  });
  app.setGlobalPrefix('api');
  app.enableVersioning({ type: VersioningType.URI });
  await app.listen(0, '127.0.0.1');
  const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  // The first fetch() of a process loads undici (a few hundred ms): done before we listen.
  await (await fetch(`${base}/api/v1/cats/0`)).text();
  await new Promise((resolve) => setTimeout(resolve, 500));

  const monitor = app.get(Monitor);
  monitor.on('request', (r) => console.log(`request ${r.method} ${r.route} ${r.status} ${r.correlationId}`));
  monitor.on('stall', (r) =>
    console.log(
      `stall ${Math.round(r.durationMs)} ms in ${r.culprit?.functionName} during ${r.request?.route} (${r.request?.correlationId})`,
    ),
  );

  const res = await fetch(`${base}/api/v1/cats/42`, { headers: { 'x-request-id': 'checkout-7f3a' } });
  console.log(res.status, res.headers.get('x-request-id'), await res.text());
  await (await fetch(`${base}/api/v1/cats/7`)).text();
  await (await fetch(`${base}/api/v1/cats/7/invoice`, { headers: { 'x-request-id': 'inv-7' } })).text();
  await new Promise((resolve) => setTimeout(resolve, 300));
  await app.close();
}

void main();
