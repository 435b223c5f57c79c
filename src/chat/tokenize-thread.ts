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

export interface LongTextOptions {
  /** The worker module (default: tokenizeWorkerFile()). */
  file?: string;
  /** Where encoding moves to the thread (default OFF_LOOP_CHARS; tests lower it). */
  offLoopChars?: number;
  /** Told once why the thread could not serve, the first time it could not. */
  log?: (line: string) => void;
}

export class LongTextTokenizer {
  private readonly thread?: JobThread<TokenizeJob, TokenizeReply>;
  private readonly offLoopChars: number;
  /** Whether the thread's first failure was told (or the tokenizer closed: its jobs' failures are no news). */
  private told = false;

  constructor(
    readonly tokenizer: Tokenizer,
    private readonly options: LongTextOptions = {},
  ) {
    const file = 'file' in options ? options.file : tokenizeWorkerFile();
    this.offLoopChars = options.offLoopChars ?? OFF_LOOP_CHARS;
    if (file && tokenizer.source) this.thread = new JobThread({ file, name: "the tokenizer's thread", workerData: tokenizer.source });
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
    const reply = await this.thread.run((id) => ({ id, texts, opts, withSpecialTokens })).catch((err: Error) => ({ error: err.message }));
    if ('error' in reply) {
      if (!this.told) this.options.log?.(`the tokenizer's thread could not take a long text, which was tokenized on the event loop instead (said once): ${reply.error}`);
      this.told = true;
      return here();
    }
    const { ids, ends } = reply;
    return Array.from(ends, (end, i) => toArray(ids, i === 0 ? 0 : ends[i - 1], end));
  }

  /** Ends the thread; texts still out are encoded here. */
  close(): Promise<void> {
    this.told = true;
    return this.thread?.close() ?? Promise.resolve();
  }
}

/** ids[start .. end) as an array: a plain loop into a sized array, several times faster than Array.from for a long prompt (60 against 3-20 ms for 700,000 ids here). */
function toArray(ids: Int32Array, start: number, end: number): number[] {
  const out = new Array<number>(end - start);
  for (let i = start; i < end; i++) out[i - start] = ids[i];
  return out;
}
