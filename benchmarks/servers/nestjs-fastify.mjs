// node servers/nestjs-fastify.mjs <variant>: Nest 11 on @nestjs/platform-fastify (lib/nest.mjs).
import { serveNest } from './lib/nest.mjs';
import { nestVariants } from './lib/nest-variants.mjs';

await serveNest('fastify', nestVariants);
