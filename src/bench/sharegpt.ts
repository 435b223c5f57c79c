// Requests drawn from a ShareGPT-format conversation file, as `vllm bench serve --dataset-name
// sharegpt` draws them: each conversation's first turn is a prompt and its second turn's length in
// tokens the output asked for (or a fixed --output_tokens), the conversations taken in a seeded
// shuffle, with vLLM's filter (prompt and answer at least 4 tokens, the prompt at most 1,024 and the
// two at most 2,048) and the served model's own limits. Token counts come from the server's
// /tokenize (grpst's and vLLM's), so they are the model's own.
import fs from 'node:fs';
import { badInput } from '../util/errors.js';
import { JsonArrayElements, JsonListError } from '../util/json-array-elements.js';
import { mulberry32 } from '../util/seeded-random.js';

export interface Conversation {
  prompt: string;
  completion: string;
}

export interface DatasetRequest {
  /** The prompt's token ids, as the server's tokenizer gave them. */
  ids: number[];
  outputTokens: number;
}

const shapeHint = 'pass a ShareGPT-format file: a JSON list of {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}, ...]}';
const chunkBytes = 16 * 1024 * 1024;

/** Conversations by index: an array of them, or a file's read back one at a time (ShareGptFile). */
export interface Conversations {
  readonly length: number;
  at(k: number): Conversation | undefined;
}

/** The first two turns of one list entry, or null where it has no two string turns. */
function firstTwoTurns(entry: unknown): Conversation | null {
  const turns = (entry as { conversations?: unknown; conversation?: unknown } | null)?.conversations ?? (entry as { conversation?: unknown } | null)?.conversation;
  if (!Array.isArray(turns) || turns.length < 2) return null;
  const [first, second] = turns as { value?: unknown }[];
  if (typeof first?.value !== 'string' || typeof second?.value !== 'string') return null;
  return { prompt: first.value, completion: second.value };
}

/**
 * A ShareGPT file's conversations, by position: the scan keeps where each one's entry lies (16 bytes
 * a conversation), and at(k) reads that entry again, so a run that tokenizes a few hundred of a
 * 1 GB file's conversations holds those, not every prompt and answer in the file.
 */
export class ShareGptFile implements Conversations {
  constructor(
    readonly file: string,
    /** [start, end) byte offsets of each kept entry, two numbers a conversation. */
    private readonly spans: Float64Array,
  ) {}

  get length(): number {
    return this.spans.length / 2;
  }

  at(k: number): Conversation | undefined {
    if (!Number.isInteger(k) || k < 0 || k >= this.length) return undefined;
    const start = this.spans[2 * k], size = this.spans[2 * k + 1] - start;
    const bytes = Buffer.alloc(size);
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.file, 'r');
      for (let got = 0, n; got < size; got += n) {
        n = fs.readSync(fd, bytes, got, size - got, start + got);
        if (n === 0) break;
      }
    } catch (err) {
      throw badInput(`--dataset ${this.file} cannot be read again (${(err as Error).message})`, 'leave the file in place while the benchmark runs');
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    let conversation: Conversation | null = null;
    try {
      conversation = firstTwoTurns(JSON.parse(bytes.toString('utf8')));
    } catch {
      // a changed file: named below
    }
    if (!conversation) throw badInput(`--dataset ${this.file} changed while the benchmark read it (conversation ${k + 1} is no longer where it was)`, 'leave the file as it is while the benchmark runs');
    return conversation;
  }
}

/**
 * Every entry of `file` with two turns, as positions (ShareGptFile); the rest are passed over. Read
 * a chunk at a time: a file of any size (vLLM's ShareGPT_V3_unfiltered_cleaned_split.json is 673
 * MB) costs the memory of its largest entry while it is read. `chunk`: bytes per read (tests).
 */
export function readShareGpt(file: string, chunk = chunkBytes): { conversations: ShareGptFile; entries: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    throw badInput(`--dataset ${file} does not exist or cannot be read`, shapeHint);
  }
  let spans = new Float64Array(1024);
  let kept = 0;
  const list = new JsonArrayElements((entry, span) => {
    if (!firstTwoTurns(entry)) return;
    if (2 * kept + 2 > spans.length) {
      const wider = new Float64Array(spans.length * 2);
      wider.set(spans);
      spans = wider;
    }
    spans[2 * kept] = span.start;
    spans[2 * kept + 1] = span.end;
    kept++;
  });
  let entries: number;
  try {
    const buffer = Buffer.alloc(chunk);
    for (let n; (n = fs.readSync(fd, buffer, 0, chunk, null)) > 0; ) list.push(buffer.subarray(0, n));
    entries = list.end();
  } catch (err) {
    if (!(err instanceof JsonListError)) throw badInput(`--dataset ${file} cannot be read (${(err as Error).message})`, shapeHint);
    throw badInput(err.notAList ? `--dataset ${file} holds no list of conversations` : `--dataset ${file} is not valid JSON (${err.message})`, shapeHint);
  } finally {
    fs.closeSync(fd);
  }
  return { conversations: new ShareGptFile(file, spans.slice(0, 2 * kept)), entries };
}

export interface SampleOptions {
  /** How many requests the runs send. */
  needed: number;
  /** Token ids of a text, as the served model tokenizes it. */
  tokenize: (text: string) => Promise<number[]>;
  /** Every request's output length (--output_tokens given); else its conversation's answer's. */
  fixedOutput?: number;
  maxInputLen?: number;
  maxModelLen?: number;
  seed?: number;
}

/** vLLM's bounds on a ShareGPT request (benchmark_dataset's is_valid_sequence). */
const minTokens = 4;
const maxPromptTokens = 1024;
const maxTotalTokens = 2048;

/**
 * Up to `needed` requests from the conversations in a seeded shuffle, each one that fits the
 * bounds; `looked` says how many conversations were tokenized to find them.
 */
export async function sampleShareGpt(conversations: Conversations, opts: SampleOptions): Promise<{ requests: DatasetRequest[]; looked: number }> {
  const order = shuffled(conversations.length, opts.seed ?? 0);
  const requests: DatasetRequest[] = [];
  let looked = 0;
  // a batch of conversations tokenized at once: the server's /tokenize calls overlap
  const batch = 16;
  while (requests.length < opts.needed && looked < order.length) {
    const part = order.slice(looked, looked + batch);
    looked += part.length;
    const drawn = await Promise.all(
      part.map(async (k) => {
        const c = conversations.at(k)!;
        const ids = await opts.tokenize(c.prompt);
        const outputTokens = opts.fixedOutput ?? (await opts.tokenize(c.completion)).length;
        return { ids, outputTokens };
      }),
    );
    for (const r of drawn) {
      if (requests.length < opts.needed && fits(r, opts)) requests.push(r);
    }
  }
  return { requests, looked };
}

function fits(r: DatasetRequest, opts: SampleOptions): boolean {
  const prompt = r.ids.length;
  if (prompt < minTokens || (opts.fixedOutput === undefined && r.outputTokens < minTokens)) return false;
  if (prompt > maxPromptTokens || prompt + r.outputTokens > maxTotalTokens) return false;
  if (opts.maxInputLen !== undefined && prompt > opts.maxInputLen) return false;
  return opts.maxModelLen === undefined || prompt + r.outputTokens <= opts.maxModelLen;
}

/** 0..n-1 in a Fisher-Yates shuffle from a fixed seed (mulberry32), so runs draw the same. */
function shuffled(n: number, seed: number): number[] {
  const uniform = mulberry32(seed ^ 0x2545f491);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(uniform() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
