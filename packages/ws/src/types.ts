import type { AdapterOptions } from '@loopsight/core';

/** A message's payload as ws hands it to 'message' listeners (its `binaryType` decides which). */
export type WsData = Buffer | ArrayBuffer | Buffer[];

/** The parts of a ws `WebSocket` loopsight uses: an EventEmitter. */
export interface WebSocketLike {
  /** Adds a listener; loopsight wraps 'message' listeners so that their promises are awaited. */
  on(event: string, listener: (...args: never[]) => unknown): unknown;
  /** Emits an event; loopsight runs 'message' in the connection's scope. */
  emit(event: string | symbol, ...args: unknown[]): boolean;
}

/** The parts of a ws `WebSocketServer` loopsight uses. */
export interface WebSocketServerLike {
  /** loopsight listens to 'headers' (the handshake), 'connection' and 'close'. */
  on(event: string, listener: (...args: never[]) => unknown): unknown;
  /** Used by `monitor.stop()` and on 'close' to let go of the server. */
  removeListener(event: string, listener: (...args: never[]) => unknown): unknown;
  /** With `clientTracking` (ws's default): the open sockets, released on `monitor.stop()`. */
  readonly clients?: Set<unknown> | undefined;
}

/** `loopsight(wss, options)`: every adapter's options, plus how to name a message's kind. */
export interface LoopsightWsOptions extends AdapterOptions {
  /**
   * Names a message's kind (a JSON `type` field, a topic): the scope's `route`, the label of its
   * stalls and promise reports. `undefined` (or a throw, or a non-string, warned once) names it by
   * the upgrade path. Called once per message, before its listeners; keep it cheap.
   */
  messageName?: (data: WsData, isBinary: boolean, socket: WebSocketLike) => string | undefined;
  /**
   * Distinct message kinds (and upgrade paths) kept as routes; past it, a message's route is
   * `__other__`. Default 100, as the exporters' route labels.
   */
  maxMessageNames?: number;
}
