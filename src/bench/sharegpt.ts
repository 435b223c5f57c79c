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

/**
 * The first two turns of every conversation in `file` that has them (others are passed over),
 * read a chunk at a time: a file of any size (vLLM's ShareGPT_V3_unfiltered_cleaned_split.json is
 * 673 MB) holds only what is kept in memory. `chunk`: bytes per read (tests).
 */
export function readShareGpt(file: string, chunk = chunkBytes): { conversations: Conversation[]; entries: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    throw badInput(`--dataset ${file} does not exist or cannot be read`, shapeHint);
  }
  const conversations: Conversation[] = [];
  const list = new JsonArrayElements((entry) => {
    const turns = (entry as { conversations?: unknown; conversation?: unknown } | null)?.conversations ?? (entry as { conversation?: unknown } | null)?.conversation;
    if (!Array.isArray(turns) || turns.length < 2) return;
    const [first, second] = turns as { value?: unknown }[];
    if (typeof first?.value !== 'string' || typeof second?.value !== 'string') return;
    conversations.push({ prompt: first.value, completion: second.value });
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
  return { conversations, entries };
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
export async function sampleShareGpt(conversations: Conversation[], opts: SampleOptions): Promise<{ requests: DatasetRequest[]; looked: number }> {
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
        const c = conversations[k];
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
