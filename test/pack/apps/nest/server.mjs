// The ESM build of @loopsight/nestjs, from plain JavaScript: Nest's decorators applied by hand.
import 'reflect-metadata';
import { getCorrelationId } from '@loopsight/context';
import { LoopsightModule, Monitor } from '@loopsight/nestjs';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import probes from './probe.cjs';

class UsersController {
  async get() {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { id: getCorrelationId() };
  }
}
Controller('users')(UsersController);
Get(':id')(UsersController.prototype, 'get', Object.getOwnPropertyDescriptor(UsersController.prototype, 'get'));

class AppModule {}
Module({ imports: [LoopsightModule.forRoot({ promises: false, onReport: () => {} })], controllers: [UsersController] })(AppModule);

const results = [];
for (const [platform, adapter] of [
  ['express', new ExpressAdapter()],
  ['fastify', new FastifyAdapter()],
]) {
  const app = await NestFactory.create(AppModule, adapter, { logger: false, forceCloseConnections: true });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  results.push(await probes.probe(`esm-nest-${platform}`, { url, monitor: app.get(Monitor), close: () => app.close() }));
}
process.stdout.write(`${JSON.stringify(results)}\n`);
