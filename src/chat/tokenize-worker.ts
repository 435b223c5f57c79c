// The tokenizer's thread body (tokenize-thread.ts starts it): long texts -> token ids, with the
// same tokenizer the server holds, read again from its folder on the first job (about 0.5 s),
// unless its tokenizer.json changed since the server read it (then every job fails and the
// server tokenizes on its own thread). The ids go back in one Int32Array, without a copy.
import { parentPort, workerData } from 'node:worker_threads';
import type { TokenizerSource } from './tokenizer-files.js';
import { Tokenizer, type EncodeOptions } from './tokenizer.js';

export interface TokenizeJob {
  id: number;
  texts: string[];
  /** Text i's options: opts[i], or opts itself for every text. */
  opts: EncodeOptions | EncodeOptions[];
  /** Hugging Face's tokenizer(text): with the post-processor's tokens (embedding inputs). */
  withSpecialTokens: boolean;
}

/** `ids` holds every text's ids one after the other; text i's are ids[ends[i - 1] .. ends[i]). */
export type TokenizeReply = { id: number; ids: Int32Array; ends: Int32Array } | { id: number; error: string };

const port = parentPort;
const source = workerData as TokenizerSource;
let tokenizer: Tokenizer | undefined;

function sameTokenizer(): Tokenizer {
  if (tokenizer) return tokenizer;
  const read = Tokenizer.fromDir(source.dir);
  if (read.source?.stamp !== source.stamp) throw new Error(`${source.dir}/tokenizer.json changed after the server read it`);
  return (tokenizer = read);
}

port?.on('message', (job: TokenizeJob) => {
  try {
    const tok = sameTokenizer();
    const lists = job.texts.map((t, i) => (job.withSpecialTokens ? tok.encodeWithSpecialTokens(t) : tok.encode(t, Array.isArray(job.opts) ? job.opts[i] : job.opts)));
    const ends = new Int32Array(lists.length);
    let total = 0;
    lists.forEach((l, i) => (ends[i] = total += l.length));
    const ids = new Int32Array(total);
    lists.forEach((l, i) => ids.set(l, i === 0 ? 0 : ends[i - 1]));
    const reply: TokenizeReply = { id: job.id, ids, ends };
    port.postMessage(reply, [ids.buffer, ends.buffer]);
  } catch (err) {
    const reply: TokenizeReply = { id: job.id, error: err instanceof Error ? err.message : String(err) };
    port.postMessage(reply);
  }
});
