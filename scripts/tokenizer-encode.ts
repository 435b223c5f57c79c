// Encodes texts with grpst's tokenizer for scripts/check_tokenizer_unicode.py.
// Usage: tsx scripts/tokenizer-encode.ts TOKENIZER_DIR IN.json OUT.json  (IN: a list of strings;
// OUT: a list of id lists, in the same order).
import { readFileSync, writeFileSync } from 'node:fs';
import { Tokenizer } from '../src/chat/tokenizer.js';

const [dir, input, output] = process.argv.slice(2);
if (!dir || !input || !output) {
  process.stderr.write('usage: tsx scripts/tokenizer-encode.ts TOKENIZER_DIR IN.json OUT.json\n');
  process.exit(2);
}
const tokenizer = Tokenizer.fromDir(dir);
const texts = JSON.parse(readFileSync(input, 'utf8')) as string[];
writeFileSync(output, JSON.stringify(texts.map((t) => Array.from(tokenizer.encode(t)))));
