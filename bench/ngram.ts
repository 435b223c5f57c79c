// npm run bench:ngram — what one prompt lookup (speculative decoding's drafts) costs the engine
// thread per sequence and step, by sequence length: the scan that defines it (each suffix length
// searched backwards through the whole sequence) against the index the scheduler keeps
// (NgramIndex: the chain of earlier ends of the same last token pair). The sequence has no
// repeats, so every lookup fails: the scan's worst case and the index's best, whose cost is the
// number of earlier occurrences of the last two tokens. Also per step of a batch of 64 sequences.
//
//   npm run bench:ngram [-- --lengths 1024,4096,32768,131072 --reps 500 --json FILE]
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadAddon } from '../src/engine/index.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: { lengths: { type: 'string', default: '1024,4096,32768,131072' }, reps: { type: 'string', default: '500' }, json: { type: 'string' } },
});
const lengths = args.lengths.split(',').map(Number);
const reps = Number(args.reps);
if (lengths.some((n) => !(n >= 2)) || !(reps >= 1)) throw new Error('--lengths must be numbers of at least 2, --reps at least 1');

const addon = loadAddon();
const rows = lengths.map((length) => {
  const best = { scanUs: Infinity, indexUs: Infinity };
  for (let round = 0; round < 3; round++) {
    const r = addon.benchNgramDraft(length, reps);
    best.scanUs = Math.min(best.scanUs, r.scanUs);
    best.indexUs = Math.min(best.indexUs, r.indexUs);
  }
  return { length, ...best, scanMsPerStepB64: (best.scanUs * 64) / 1000, indexMsPerStepB64: (best.indexUs * 64) / 1000 };
});
const machine = `${cpus()[0]?.model.trim()} x ${cpus().length}`;
console.log(`prompt lookup per failing lookup, best of 3 rounds of ${reps}; ${machine}`);
console.log('| sequence tokens | scan us | index us | batch 64: scan ms a step | index ms a step |');
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows)
  console.log(`| ${r.length} | ${r.scanUs.toFixed(2)} | ${r.indexUs.toFixed(3)} | ${r.scanMsPerStepB64.toFixed(2)} | ${r.indexMsPerStepB64.toFixed(4)} |`);
if (args.json) writeFileSync(args.json, JSON.stringify({ machine, reps, rows }, null, 2) + '\n');
