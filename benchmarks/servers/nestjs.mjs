// node servers/nestjs.mjs <variant>: Nest 11 on @nestjs/platform-express (lib/nest.mjs).
import { serveNest } from './lib/nest.mjs';
import { nestVariants } from './lib/nest-variants.mjs';

await serveNest('express', nestVariants);
