import { start } from './preload.js';

export { preloadMonitor } from './preload.js';

// The one loopsight module that acts on import: `node --import @loopsight/register` is its API.
start();
