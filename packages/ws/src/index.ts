export { loopsight } from './adapter.js';
export type { LoopsightWsOptions, WebSocketLike, WebSocketServerLike, WsData } from './types.js';
