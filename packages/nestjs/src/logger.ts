import { getCorrelationId } from '@loopsight/context';
import { Logger, type LoggerService } from '@nestjs/common';

const LEVELS = new Set<PropertyKey>(['log', 'error', 'warn', 'debug', 'verbose', 'fatal']);
// Shared by the ESM and CJS builds, and by every app of the process: one wrapper, counted.
const WRAPPED = Symbol.for('loopsight.nestjs.logger.v1');

interface Wrapper extends LoggerService {
  [WRAPPED]: { inner: LoggerService; users: number };
}

/** `staticInstanceRef` is where `Logger.overrideLogger()` keeps the app's logger; Nest reads no other. */
const current = () => (Logger as unknown as { staticInstanceRef?: LoggerService }).staticInstanceRef;

/**
 * Nest's loggers take the context (`new Logger('Cats')`) as their last string argument: the id
 * joins it, so `[Cats]` prints as `[Cats 4f1c…]`, in the text and the JSON format alike. A call
 * with no context (a stack is not one) gets the id as its context.
 */
function withId(params: unknown[]): unknown[] {
  const id = getCorrelationId();
  if (id === undefined) return params;
  const last = params.at(-1);
  if (typeof last === 'string' && !last.includes('\n')) return [...params.slice(0, -1), `${last} ${id}`];
  return [...params, id];
}

function wrap(inner: LoggerService): Wrapper {
  const state = { inner, users: 0 };
  return new Proxy(inner as Wrapper, {
    get(target, key) {
      if (key === WRAPPED) return state;
      const value = Reflect.get(target, key, target);
      if (!LEVELS.has(key) || typeof value !== 'function') return value;
      return (message: unknown, ...params: unknown[]) => value.call(target, message, ...withId(params));
    },
  });
}

/**
 * Puts the request's correlation id on every line of the app's Nest logger (ConsoleLogger by
 * default, or the one given to `NestFactory.create`). A logger set later with `app.useLogger()`
 * replaces it: nestjs-pino then reads the id from `req.id`. Returns the undo, for app close.
 */
export function correlateNestLogger(): () => void {
  const inner = current();
  if (inner === undefined) return () => {};
  const wrapper = (inner as Partial<Wrapper>)[WRAPPED] ? (inner as Wrapper) : wrap(inner);
  const state = wrapper[WRAPPED];
  state.users++;
  if (wrapper !== inner) Logger.overrideLogger(wrapper);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    state.users--;
    // Left alone when the app has set a logger of its own since.
    if (state.users === 0 && current() === wrapper) Logger.overrideLogger(state.inner);
  };
}
