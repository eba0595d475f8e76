// node cg-diff.mjs A.cg B.cg [--requests N]
//
// Where two callgrind profiles kept by `instructions.mjs --keep DIR` differ: self instructions per
// request by kind of work (JIT-compiled JavaScript, V8's property-access slow paths, the optimizing
// compiler, GC, builtins, the rest of the runtime), then the functions that differ most.
// JIT-compiled code has no symbols under valgrind: it shows as addresses, summed as "JIT code".
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { requests: { type: 'string', default: '2000' }, top: { type: 'string', default: '15' } },
});
if (positionals.length !== 2) {
  console.error('usage: node cg-diff.mjs A.cg B.cg [--requests N] [--top K]');
  process.exit(2);
}
const requests = Number(args.requests);

/** Self instructions per function, from callgrind_annotate. */
function selfCosts(file) {
  const text = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', file], {
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
  });
  const costs = new Map();
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (!m) continue;
    const cost = Number(m[1].replaceAll(',', ''));
    if (/PROGRAM TOTALS/.test(m[2])) total = cost;
    // The frames below the event loop (main, node::Start...) are listed with the whole program's
    // count even in self mode: not work of their own.
    else if (cost !== total) costs.set(m[2], cost / requests);
  }
  return costs;
}

const KINDS = [
  ['JIT code', (f) => /\[\?\?\?\]$/.test(f)],
  ['optimizing compiler', (f) => /compiler::|maglev::|Compil|Pipeline/.test(f)],
  ['GC', (f) => /Scaveng|Marking|Sweep|Heap::|Evacuat|RememberedSet|Barrier|MemoryChunk/.test(f)],
  [
    'property access slow paths (IC misses, lookups, map transitions)',
    (f) => /IC\b|IC::|IC_|Lookup|Map::|Migrate|Descriptor|FieldIndex|Feedback|StubCache|Prototype|Transition/.test(f),
  ],
  ['builtins', (f) => /:Builtins_/.test(f)],
  ['rest of the runtime', () => true],
];
const kindOf = (f) => KINDS.find(([, test]) => test(f))[0];

const [a, b] = positionals.map(selfCosts);
const byKind = (costs) => {
  const sums = new Map(KINDS.map(([k]) => [k, 0]));
  for (const [f, c] of costs) sums.set(kindOf(f), sums.get(kindOf(f)) + c);
  return sums;
};
const ka = byKind(a);
const kb = byKind(b);
const fmt = (n) => Math.round(n).toLocaleString('en-US');
console.log(`| self instructions per request | ${positionals[0]} | ${positionals[1]} | difference |`);
console.log('| --- | ---: | ---: | ---: |');
for (const [k] of KINDS) console.log(`| ${k} | ${fmt(ka.get(k))} | ${fmt(kb.get(k))} | ${fmt(kb.get(k) - ka.get(k))} |`);
const total = (m) => [...m.values()].reduce((s, x) => s + x, 0);
console.log(`| total | ${fmt(total(ka))} | ${fmt(total(kb))} | ${fmt(total(kb) - total(ka))} |`);
console.log('\nfunctions that differ most (JIT code excluded: its addresses differ between processes):');
const names = new Set([...a.keys(), ...b.keys()].filter((f) => kindOf(f) !== 'JIT code'));
const diffs = [...names].map((f) => [f, (b.get(f) ?? 0) - (a.get(f) ?? 0)]).sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
for (const [f, d] of diffs.slice(0, Number(args.top))) console.log(`${fmt(d).padStart(9)}  ${f.replace(/^\?\?\?:/, '').slice(0, 140)}`);
