export { traceIdOf } from '@loopsight/core';
export { correlationHeaders, getCorrelationId, withCorrelationId } from './api.js';
export { pinoMixin, type WinstonFormat, winstonFormat } from './loggers.js';
export { enablePropagation } from './propagation.js';
