// Relevance scores for /v1/rerank and /v1/score, the way Qwen3-Reranker models are used: each
// (query, document) pair becomes one prompt in the model card's format, the model is asked
// whether the document meets the query, and the score is p("yes") against p("no") at the prompt's
// last position: sigmoid(logprob(yes) - logprob(no)). Any Qwen3 causal LM can score this way;
// Qwen3-Reranker checkpoints are trained for it. The runtime computes each prompt and samples
// nothing (SubmitRequest.scoreIds).
import type { EncodeOptions, Tokenizer } from '../chat/tokenizer.js';
import { promptTokenLimit } from './openai/sampling.js';
import { ApiError, badRequest } from './errors.js';
import { forEachPrompt, promptOnly } from './prompt-only.js';
import type { RequestContext } from './router.js';

/** Pairs one request may score: each is an engine sequence (as many as /v1/embeddings inputs). */
export const MAX_RERANK_PAIRS = 2048;

/** Qwen3-Reranker's default task, from its model card. */
export const DEFAULT_RERANK_INSTRUCTION = 'Given a web search query, retrieve relevant passages that answer the query';

const PREFIX =
  '<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. ' +
  'Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n';
const SUFFIX = '<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';

/** A text that already holds the chat format (vLLM's Qwen3-Reranker examples format on the client). */
const preformatted = (query: string) => query.startsWith('<|im_start|>');

/** One pair's text to tokenize with `opts`; `framed`: the model card's prefix and suffix go around its ids. */
export interface PairText {
  text: string;
  opts: EncodeOptions;
  framed: boolean;
}

export interface PairLimits {
  maxSeqLen: number;
  maxInputLen: number;
}

export class RerankPrompter {
  private readonly prefix: number[];
  private readonly suffix: number[];
  /** [yes, no]: the answer tokens whose logprobs give the score. */
  readonly answerIds: [number, number];

  constructor(tok: Tokenizer) {
    this.prefix = tok.encode(PREFIX);
    this.suffix = tok.encode(SUFFIX);
    const single = (word: string): number => {
      const ids = tok.encode(word, { allowSpecial: false });
      if (ids.length !== 1) throw badRequest(`This model's tokenizer has no single token for "${word}", which reranking scores; serve a Qwen3 checkpoint.`, 'model', 'model_not_supported');
      return ids[0];
    };
    this.answerIds = [single('yes'), single('no')];
  }

  /**
   * The text of one pair to tokenize, and how. The query and document are text: special tokens
   * in them are not recognized. A query that starts with <|im_start|> is taken as formatted by
   * the client: the pair is then the query followed by the document, as vLLM concatenates them,
   * and nothing goes around it.
   */
  pairText(query: string, document: string, instruction: string): PairText {
    if (preformatted(query)) return { text: query + document, opts: {}, framed: false };
    return { text: `<Instruct>: ${instruction}\n<Query>: ${query}\n<Document>: ${document}`, opts: { allowSpecial: false }, framed: true };
  }

  /**
   * The prompt of one pair from its text's ids (pairText, tokenized).
   * `keep` (truncate_prompt_tokens, resolved): cut the document's end so the prompt has at most that many tokens.
   */
  prompt(pair: PairText, ids: number[], limits: PairLimits, param: string, keep?: number): number[] {
    const head = pair.framed ? this.prefix : [];
    const tail = pair.framed ? this.suffix : [];
    let body = ids;
    const max = promptTokenLimit(limits);
    const cap = keep === undefined ? max : Math.min(max, keep);
    const total = head.length + body.length + tail.length;
    if (total > cap) {
      const room = cap - head.length - tail.length;
      if (keep === undefined || room < 1)
        throw new ApiError(400, `This model's maximum context length is ${max} tokens. However, ${param} makes a prompt of ${total} tokens. Shorten it, or send truncate_prompt_tokens to cut the document's end.`, {
          param,
          code: 'context_length_exceeded',
        });
      body = body.slice(0, room);
    }
    return [...head, ...body, ...tail];
  }
}

/** p(yes) / (p(yes) + p(no)) from their logprobs, computed without overflow. */
export function relevance(logprobYes: number, logprobNo: number): number {
  return 1 / (1 + Math.exp(logprobNo - logprobYes));
}

/** Every prompt's score, in order (src/server/prompt-only.ts runs them). */
export async function relevanceScores(rc: RequestContext, prompts: number[][], answerIds: [number, number], priority?: number): Promise<number[]> {
  const engine = rc.server.requireGenerator();
  return forEachPrompt(
    rc,
    prompts,
    async (tokens, signal) => {
      const [yes, no] = await promptOnly(engine, { tokens, scoreIds: answerIds, priority, signal }, (ev) => ev.scores, 'Scoring');
      return relevance(yes, no);
    },
    priority,
  );
}
