export { type LoopsightFastifyOptions, loopsight } from './plugin.js';
