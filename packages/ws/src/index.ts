export { loopsight } from './adapter.js';
export type { LoopsightWsOptions, UpgradeRequest, WebSocketLike, WebSocketServerLike, WsData } from './types.js';
