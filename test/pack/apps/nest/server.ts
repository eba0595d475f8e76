// A Nest app as users write one: TypeScript with decorators, compiled by tsc to CommonJS, on
// @nestjs/platform-express and @nestjs/platform-fastify. Run with the Nest major installed (10 or 11).
import 'reflect-metadata';
import { getCorrelationId } from '@loopsight/context';
import { LoopsightModule, Monitor } from '@loopsight/nestjs';
import { Controller, Get, Inject, Injectable, Module, Param } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { probe } from './probe.cjs';

@Injectable()
class Users {
  // Injected by type: tsc emits the decorator metadata that names Monitor.
  constructor(readonly monitor: Monitor) {}

  async find(id: string): Promise<{ id: string | undefined; user: string; running: boolean }> {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { id: getCorrelationId(), user: id, running: this.monitor.running };
  }
}

@Controller('users')
class UsersController {
  constructor(@Inject(Users) private readonly users: Users) {}

  @Get(':id')
  get(@Param('id') id: string) {
    return this.users.find(id);
  }
}

@Module({
  imports: [LoopsightModule.forRoot({ promises: false, onReport: () => {} })],
  controllers: [UsersController],
  providers: [Users],
})
class AppModule {}

async function serve(platform: 'express' | 'fastify', prefix: string): Promise<unknown> {
  const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
  const app = await NestFactory.create(AppModule, adapter, { logger: false, forceCloseConnections: true });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return probe(`${prefix}-${platform}`, { url, monitor: app.get(Monitor), close: () => app.close() });
}

async function main(): Promise<void> {
  const prefix = process.argv[2] ?? 'nest';
  const results = [await serve('express', prefix), await serve('fastify', prefix)];
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

void main();
