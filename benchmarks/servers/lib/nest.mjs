// A Nest 11 app serving GET /hello and GET /awaits (routes.mjs) on the Express or the Fastify
// platform. Plain JavaScript: Nest's decorators are applied by hand. A variant gets the platform
// adapter (to mount something on it before Nest does) and returns the modules the app imports.
import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { HOST, pickVariant, serve } from './harness.mjs';
import { tenAwaits } from './routes.mjs';

class HelloController {
  hello() {
    return { hello: 'world' };
  }
  awaits() {
    return tenAwaits();
  }
}
Controller()(HelloController);
for (const route of ['hello', 'awaits']) {
  Get(route)(HelloController.prototype, route, Object.getOwnPropertyDescriptor(HelloController.prototype, route));
}

/** @param {'express' | 'fastify'} platform */
export async function serveNest(platform, variants) {
  const { name, setup } = pickVariant(variants);
  const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
  const imports = (await setup(adapter)) ?? [];
  class AppModule {}
  Module({ imports, controllers: [HelloController] })(AppModule);
  const app = await NestFactory.create(AppModule, adapter, { logger: false });
  await app.listen(0, HOST);
  serve(app.getHttpServer(), name, () => app.close());
}
