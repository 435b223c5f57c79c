// Long texts tokenized off the event loop: encoding runs at 4-7 MB of text a second here, so a
// prompt of a few MB held every other request's stream for as long as it took (16 MB, the body
// limit, about 3 s). From OFF_LOOP_CHARS on, texts go to a worker thread (tokenize-worker.ts)
// with its own copy of the tokenizer, read from the same folder when first needed; shorter ones
// cost less on this thread than the trip. The ids are the same either way: where the thread
// cannot serve (no worker file, a tokenizer not read from a folder, a thread that failed), the
// text is encoded here.
import { JobThread, workerFile } from '../util/job-thread.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';
import type { TokenizeJob, TokenizeReply } from './tokenize-worker.js';

/** From this many UTF-16 units of text in one call, encoding goes to the thread (about 10-15 ms here on the event loop). */
export const OFF_LOOP_CHARS = 64 * 1024;

export function tokenizeWorkerFile(): string | undefined {
  return workerFile(import.meta.url, 'chat', 'tokenize-worker.js');
}

export class LongTextTokenizer {
  private readonly thread?: JobThread<TokenizeJob, TokenizeReply>;

  constructor(
    readonly tokenizer: Tokenizer,
    file = tokenizeWorkerFile(),
    /** Where encoding moves to the thread (tests lower it). */
    private readonly offLoopChars = OFF_LOOP_CHARS,
  ) {
    if (file && tokenizer.dir) this.thread = new JobThread({ file, name: "the tokenizer's thread", workerData: { dir: tokenizer.dir } });
  }

  /** tokenizer.encode(text, opts), off the event loop for a long text. */
  async encode(text: string, opts: EncodeOptions = {}): Promise<number[]> {
    return (await this.encodeAll([text], opts))[0];
  }

  /** tokenizer.encodeWithSpecialTokens for each text, off the event loop when they are long together. */
  encodeAllWithSpecialTokens(texts: string[]): Promise<number[][]> {
    return this.encodeAll(texts, {}, true);
  }

  /** tokenizer.encode for each text (with opts[i], or opts for all), off the event loop when they are long together. */
  async encodeAll(texts: string[], opts: EncodeOptions | EncodeOptions[] = {}, withSpecialTokens = false): Promise<number[][]> {
    const here = () =>
      texts.map((t, i) => (withSpecialTokens ? this.tokenizer.encodeWithSpecialTokens(t) : this.tokenizer.encode(t, Array.isArray(opts) ? opts[i] : opts)));
    let chars = 0;
    for (const t of texts) chars += t.length;
    if (!this.thread || chars < this.offLoopChars) return here();
    let reply: TokenizeReply;
    try {
      reply = await this.thread.run((id) => ({ id, texts, opts, withSpecialTokens }));
    } catch {
      return here();
    }
    if ('error' in reply) return here();
    const { ids, ends } = reply;
    return Array.from(ends, (end, i) => toArray(ids, i === 0 ? 0 : ends[i - 1], end));
  }

  /** Ends the thread; texts still out are encoded here. */
  close(): Promise<void> {
    return this.thread?.close() ?? Promise.resolve();
  }
}

/** ids[start .. end) as an array: a plain loop into a sized array, several times faster than Array.from for a long prompt (60 against 3-20 ms for 700,000 ids here). */
function toArray(ids: Int32Array, start: number, end: number): number[] {
  const out = new Array<number>(end - start);
  for (let i = start; i < end; i++) out[i - start] = ids[i];
  return out;
}
