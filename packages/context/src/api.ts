import { randomUUID } from 'node:crypto';
import { currentScope, type RequestScope } from '@loopsight/core';
import { correlationHeaderNames, idRefusal, runInScope } from '@loopsight/core/adapter';
import { type LoopsightCode, LoopsightTypeError } from '@loopsight/options';
import { propagatedHeaders } from './propagation.js';

const DEFAULT_HEADER = 'x-request-id';
let warned = false;

/**
 * There is no monitor to count in here (the id may be set outside any request, by code that never
 * saw one): a refused id is replaced and said once per process, as a LOOPSIGHT_REFUSED_ID warning.
 */
function replaceRefused(): string {
  if (!warned) {
    warned = true;
    process.emitWarning(
      'loopsight: withCorrelationId() was given an id that is not 1-1024 visible ASCII characters; the work ran under a fresh id (said once)',
      { code: 'LOOPSIGHT_REFUSED_ID' satisfies LoopsightCode },
    );
  }
  return randomUUID();
}

/**
 * The correlation id of the request or job that is running, or `undefined` outside any.
 *
 * @example
 * logger.info({ correlationId: getCorrelationId() }, 'order placed');
 */
export function getCorrelationId(): string | undefined {
  return currentScope()?.correlationId;
}

/**
 * Runs `fn` with `id` as the correlation id, across every await and callback it starts. Inside a
 * request, the request's method, route and start stay; only the id changes. An id that is not 1 to
 * 1024 visible ASCII characters (or not a string) is replaced by a fresh UUID, never thrown.
 *
 * @example
 * await withCorrelationId(message.headers['x-request-id'], () => handle(message));
 */
export function withCorrelationId<T>(id: string, fn: () => T): T {
  if (typeof fn !== 'function')
    throw new LoopsightTypeError('ERR_LOOPSIGHT_INVALID_ARGUMENT', 'loopsight: withCorrelationId() fn must be a function');
  // Ids often come straight from a message's headers: a hostile one must not reach logs or outbound requests.
  if (idRefusal(id) !== undefined) id = replaceRefused();
  const parent = currentScope();
  const scope: RequestScope =
    parent === undefined
      ? { correlationId: id, startedAt: Date.now() }
      : {
          correlationId: id,
          startedAt: parent.startedAt,
          // Read through: the parent may learn its route only after this scope opened.
          get method() {
            return parent.method;
          },
          get route() {
            return parent.route;
          },
        };
  return runInScope(scope, fn);
}

/**
 * Headers that carry the current id, for outbound calls loopsight does not see (a gRPC metadata
 * object, a queue message). Empty outside a scope.
 *
 * @example
 * await queue.publish(body, { headers: correlationHeaders() });
 */
export function correlationHeaders(): Record<string, string> {
  const id = getCorrelationId();
  // A scope made by hand (runInScope) is not checked when it opens: never hand out an unusable id.
  if (id === undefined || idRefusal(id) !== undefined) return {};
  // The headers propagation sets, and each running monitor's `correlation.header` even where it
  // does not propagate: the id goes out under the name the service was configured with.
  const headers: Record<string, string> = {};
  for (const name of propagatedHeaders()) headers[name] = id;
  for (const name of correlationHeaderNames()) headers[name] = id;
  if (Object.keys(headers).length === 0) headers[DEFAULT_HEADER] = id;
  return headers;
}
