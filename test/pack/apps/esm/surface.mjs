// For every package named on the command line, the names its ESM build and its CommonJS build export.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const surface = {};
for (const name of process.argv.slice(2)) {
  surface[name] = { esm: Object.keys(await import(name)).sort(), cjs: Object.keys(require(name)).sort() };
}
process.stdout.write(JSON.stringify(surface));
