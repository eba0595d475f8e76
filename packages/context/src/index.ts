export { correlationHeaders, getCorrelationId, withCorrelationId } from './api.js';
export { createHttpHandler, type HttpGlue, type HttpHandler, type ShedAnswer } from './http.js';
export { traceIdOf } from './incoming.js';
export { pinoMixin, type WinstonFormat, winstonFormat } from './loggers.js';
export { enablePropagation } from './propagation.js';
