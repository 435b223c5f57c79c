// What each request of a `grpst bench` run asks for: token prompts of set lengths (varied by
// --random_range_ratio), or a conversation file's prompts and answer lengths (--dataset). Each
// workload is checked against the served model's limits before anything is sent, and says how
// the run's header and JSON report describe it.
import { request } from 'undici';
import { badInput, failed } from '../util/errors.js';
import { summarizeAnswer } from '../util/http-answer.js';
import { lengthBounds, rangedLength, rangedTokenPrompt, tokenPrompt } from './load.js';
import { readShareGpt, sampleShareGpt } from './sharegpt.js';

export interface ModelLimits {
  maxInputLen?: number;
  maxModelLen?: number;
}

export interface Workload {
  /** Request i's prompt (token ids). */
  prompt: (i: number) => number[];
  outputTokens: number;
  /** Request i's output length where requests differ. */
  outputOf?: (i: number) => number;
  /** Prompt length of the warm-up request (one the model surely takes). */
  warmPromptTokens: number;
  /** For the header: "prompts of 128 tokens, 64 output tokens each". */
  describe: string;
  /** For the JSON report. */
  report: Record<string, unknown>;
}

/**
 * --prompt_tokens / --output_tokens, each request's lengths drawn around them with a ratio above 0;
 * with `prefixTokens`, every prompt starts with the same that many tokens (vllm bench serve's
 * --random-prefix-len), which a server's prefix cache can serve after the first.
 */
export function syntheticWorkload(promptTokens: number, outputTokens: number, ratio: number, limits: ModelLimits, prefixTokens = 0): Workload {
  const [ownLo, ownHi] = lengthBounds(promptTokens, ratio);
  const promptHi = ownHi + prefixTokens;
  const [outputLo, outputHi] = lengthBounds(outputTokens, ratio);
  // With --random_range_ratio the longest request must fit, and the refusals say so.
  const asked = (flag: string, base: number, hi: number) => (ratio > 0 ? `${flag} ${base} with --random_range_ratio ${ratio} (up to ${hi})` : `${flag} ${base}`);
  const promptAsked = `${prefixTokens > 0 ? `--prefix_tokens ${prefixTokens} + ` : ''}${asked('--prompt_tokens', promptTokens, ownHi)}`;
  const orRatio = ratio > 0 ? ' or --random_range_ratio' : '';
  // Both limits /v1/models lists: an engine takes prompts only up to its max_input_len.
  if (limits.maxInputLen !== undefined && promptHi > limits.maxInputLen)
    throw badInput(
      `${promptAsked} is past the model's max_input_len ${limits.maxInputLen} (the longest prompt it takes)`,
      prefixTokens > 0
        ? `lower --prefix_tokens or --prompt_tokens${orRatio} to at most ${limits.maxInputLen} tokens a prompt together`
        : `lower --prompt_tokens${orRatio} to at most ${limits.maxInputLen}${ratio > 0 ? ' tokens a prompt' : ''}`,
    );
  const perRequest = promptHi + outputHi;
  if (limits.maxModelLen !== undefined && perRequest > limits.maxModelLen)
    throw badInput(
      `${promptAsked} + ${asked('--output_tokens', outputTokens, outputHi)} = ${perRequest} tokens per request, past the model's max_model_len ${limits.maxModelLen}`,
      `lower ${prefixTokens > 0 ? '--prefix_tokens, ' : ''}--prompt_tokens or --output_tokens${orRatio} to at most ${limits.maxModelLen} together`,
    );
  const own = ratio === 0 ? tokenPrompt(promptTokens) : rangedTokenPrompt(rangedLength(promptTokens, ratio, 1));
  // The shared prefix: one more family of tokens (salt 3), the same for every request.
  const prefix = prefixTokens > 0 ? tokenPrompt(prefixTokens, 3)(0) : [];
  const prompt = prefixTokens > 0 ? (i: number) => [...prefix, ...own(i)] : own;
  const shared = prefixTokens > 0 ? `a shared ${prefixTokens}-token prefix + ` : '';
  const prefixReport = prefixTokens > 0 ? { prefixTokens } : {};
  if (ratio === 0)
    return {
      prompt,
      outputTokens,
      warmPromptTokens: promptTokens,
      describe: `prompts of ${shared}${promptTokens} tokens, ${outputTokens} output tokens each`,
      report: { promptTokens, outputTokens, ...prefixReport },
    };
  return {
    prompt,
    outputTokens,
    outputOf: rangedLength(outputTokens, ratio, 2),
    warmPromptTokens: promptTokens,
    describe: `prompts of ${shared}${ownLo}-${ownHi} tokens, ${outputLo}-${outputHi} output tokens (uniform per request)`,
    report: { promptTokens, outputTokens, randomRangeRatio: ratio, ...prefixReport },
  };
}

export interface DatasetOptions {
  /** Requests the runs send together: each gets a conversation of its own. */
  needed: number;
  /** --output_tokens given: every request's output length, instead of its conversation's answer's. */
  fixedOutput?: number;
  limits: ModelLimits;
  tokenize: (text: string) => Promise<number[]>;
}

/** A ShareGPT file's conversations (sharegpt.ts), refused where too few of them fit. */
export async function datasetWorkload(file: string, opts: DatasetOptions): Promise<Workload> {
  const { conversations, entries } = readShareGpt(file);
  if (conversations.length === 0) throw badInput(`--dataset ${file}: none of its ${entries} entries has a conversation of two turns`, 'pass a ShareGPT-format file (a JSON list of {"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]})');
  const { requests, looked } = await sampleShareGpt(conversations, { needed: opts.needed, tokenize: opts.tokenize, fixedOutput: opts.fixedOutput, ...opts.limits });
  if (requests.length < opts.needed)
    throw badInput(
      `--dataset ${file} has ${requests.length} conversations that fit (of ${conversations.length} with two turns; the rest under 4 tokens, past 1,024 prompt or 2,048 tokens in all, or past the model's limits), and the runs send ${opts.needed} requests`,
      'lower --requests or --concurrency, or pass a larger file',
    );
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const promptMean = mean(requests.map((r) => r.ids.length));
  const outputMean = mean(requests.map((r) => r.outputTokens));
  return {
    prompt: (i) => requests[i].ids,
    outputTokens: opts.fixedOutput ?? Math.round(outputMean),
    outputOf: (i) => requests[i].outputTokens,
    warmPromptTokens: requests.reduce((m, r) => Math.min(m, r.ids.length), Infinity),
    describe: `${requests.length} prompts from ${file} (${looked} of its ${conversations.length} conversations tokenized; prompt tokens mean ${promptMean.toFixed(1)}, output tokens ${opts.fixedOutput !== undefined ? `${opts.fixedOutput} each` : `mean ${outputMean.toFixed(1)}`})`,
    report: { dataset: { path: file, conversations: conversations.length, requests: requests.length, promptTokensMean: promptMean, outputTokensMean: outputMean } },
  };
}

/** The served model's tokenizer, through the server's /tokenize (grpst's, vLLM's). */
export function serverTokenizer(baseUrl: string, model: string, apiKey?: string): (text: string) => Promise<number[]> {
  return async (text) => {
    const res = await request(`${baseUrl}/tokenize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
      body: JSON.stringify({ model, prompt: text, add_special_tokens: false }),
    });
    const body = await res.body.text();
    if (res.statusCode === 404) throw badInput(`--dataset counts tokens with the server's /tokenize, and ${baseUrl} has none (404)`, 'run it against a grpst or vLLM server, or use --prompt_tokens / --output_tokens');
    if (res.statusCode !== 200) throw failed(`${baseUrl}/tokenize answered ${res.statusCode}: ${summarizeAnswer(res.headers['content-type'], body).text}`, 'check the server log');
    const tokens = (JSON.parse(body) as { tokens?: unknown }).tokens;
    if (!Array.isArray(tokens)) throw failed(`${baseUrl}/tokenize answered without a tokens list`, 'run it against a grpst or vLLM server');
    return tokens as number[];
  };
}
