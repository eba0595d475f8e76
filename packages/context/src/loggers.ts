import { getCorrelationId } from './api.js';

/**
 * A pino `mixin` that adds `correlationId` to every line logged inside a scope.
 *
 * @example
 * const logger = pino({ mixin: pinoMixin() });
 */
export function pinoMixin(): () => { correlationId?: string } {
  // pino merges into the returned object, so each call returns a new one.
  return () => {
    const correlationId = getCorrelationId();
    return correlationId === undefined ? {} : { correlationId };
  };
}

/** The shape winston and logform accept as a format. */
export interface WinstonFormat {
  transform(info: Record<string | symbol, unknown>): Record<string | symbol, unknown>;
}

/**
 * A winston format that adds `correlationId` to every entry logged inside a scope; an entry that
 * already has one keeps it.
 *
 * @example
 * winston.createLogger({ format: winston.format.combine(winstonFormat(), winston.format.json()) });
 */
export function winstonFormat(): WinstonFormat {
  return {
    transform(info) {
      const correlationId = getCorrelationId();
      if (correlationId !== undefined && info.correlationId === undefined) info.correlationId = correlationId;
      return info;
    },
  };
}
