// The tokenizer's thread body (tokenize-thread.ts starts it): long texts -> token ids, with the
// same tokenizer the server holds, read again from its folder on the first job (about 0.5 s).
// The ids go back in one Int32Array, without a copy.
import { parentPort, workerData } from 'node:worker_threads';
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
const dir = (workerData as { dir: string }).dir;
let tokenizer: Tokenizer | undefined;
port?.on('message', (job: TokenizeJob) => {
  try {
    tokenizer ??= Tokenizer.fromDir(dir);
    const tok = tokenizer;
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
