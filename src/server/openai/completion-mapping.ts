// Choice updates -> /v1/completions responses and stream chunks (OpenAI's legacy text shape).
import type { ChoiceFinish, ChoiceUpdate, PromptLogprobs } from '../generate.js';
import type { ResponseMeta, Usage } from './chat-mapping.js';
import { CompletionLogprobsBuilder, type CompletionLogprobs, type TokenBytes, type TokenNaming } from './logprobs.js';
import { vllmPromptLogprobs } from './prompt-logprobs.js';
import { stopReason } from './vllm-output.js';

export interface CompletionPrompt {
  ids: number[];
  text: string;
}

export interface CompletionView {
  echo: boolean;
  /** Alternatives per position when logprobs were asked for. */
  logprobs?: number;
  /** vLLM's prompt_logprobs: alternatives per prompt position, when asked for. */
  promptLogprobs?: number;
  /** vLLM's return_token_ids: the prompt's ids and each choice's. */
  tokenIds?: boolean;
  /** The model's end token, which vLLM's stop_reason leaves out. */
  eosTokenId?: number;
  /** How logprobs name tokens (vLLM's return_tokens_as_token_ids: by id). */
  tokenNaming?: TokenNaming;
  tok: TokenBytes;
}

/** One choice's text and logprobs, echo included. */
export class CompletionChoiceState {
  text = '';
  finishReason: ChoiceFinish = 'stop';
  stopReason: string | number | null = null;
  completionTokens = 0;
  private readonly ids: number[] = [];
  private promptIdsSent = false;
  private readonly lp?: CompletionLogprobsBuilder;
  private all?: CompletionLogprobs;
  private echoed = false;
  private promptLp?: PromptLogprobs;

  constructor(
    readonly index: number,
    private readonly prompt: CompletionPrompt,
    private readonly view: CompletionView,
  ) {
    if (view.logprobs !== undefined) {
      this.lp = new CompletionLogprobsBuilder(view.tok, view.logprobs, 0, view.tokenNaming);
      this.all = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    }
  }

  /** The text and logprobs this update adds (the echoed prompt first, once). */
  add(u: ChoiceUpdate): { text: string; logprobs: CompletionLogprobs | null } {
    if (u.promptLogprobs) this.promptLp = u.promptLogprobs;
    let text = '';
    if (this.view.echo && !this.echoed) {
      this.echoed = true;
      text += this.prompt.text;
      this.lp?.addPrompt(this.prompt.ids, u.promptLogprobs as PromptLogprobs | undefined);
    }
    text += u.content;
    this.lp?.addGenerated(u.logprobs);
    this.text += text;
    if (u.finishReason) {
      this.finishReason = u.finishReason === 'tool_calls' ? 'stop' : u.finishReason;
      this.stopReason = stopReason(u, this.view.eosTokenId);
    }
    this.completionTokens = u.completionTokens;
    if (this.view.tokenIds && u.tokenIds) this.ids.push(...u.tokenIds);
    if (!this.lp || !this.all) return { text, logprobs: null };
    const part = this.lp.take();
    this.all.tokens.push(...part.tokens);
    this.all.token_logprobs.push(...part.token_logprobs);
    this.all.top_logprobs.push(...part.top_logprobs);
    this.all.text_offset.push(...part.text_offset);
    return { text, logprobs: part };
  }

  /**
   * With return_token_ids, the id fields of the chunk sent for this update: its token ids, and the
   * prompt's in the choice's first chunk (vLLM's). Empty without return_token_ids.
   */
  streamIds(u: ChoiceUpdate): Record<string, unknown> {
    if (!this.view.tokenIds) return {};
    const out: Record<string, unknown> = { token_ids: u.tokenIds ?? [] };
    if (!this.promptIdsSent) {
      this.promptIdsSent = true;
      out.prompt_token_ids = this.prompt.ids;
    }
    return out;
  }

  /** Takes the prompt logprobs of another choice of the same prompt, when this one did not score it. */
  sharePromptLogprobs(from: CompletionChoiceState): void {
    this.promptLp ??= from.promptLp;
  }

  toChoice() {
    const choice: Record<string, unknown> = { index: this.index, text: this.text, logprobs: this.all ?? null, finish_reason: this.finishReason, stop_reason: this.stopReason };
    if (this.view.tokenIds) choice.token_ids = this.ids;
    if (this.view.promptLogprobs !== undefined) choice.prompt_logprobs = vllmPromptLogprobs(this.prompt.ids, this.promptLp, this.view.promptLogprobs, this.view.tok);
    if (this.view.tokenIds) choice.prompt_token_ids = this.prompt.ids;
    return choice;
  }
}

export function completionResponse(meta: ResponseMeta, choices: CompletionChoiceState[], usage: Usage) {
  return {
    id: meta.id,
    object: 'text_completion' as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.system_fingerprint,
    choices: choices.map((c) => c.toChoice()),
    usage,
  };
}

export function completionChunk(
  meta: ResponseMeta,
  choices: { index: number; text: string; logprobs: CompletionLogprobs | null; finish_reason: string | null; [vllm: string]: unknown }[],
  withUsage: boolean,
  usage?: Usage,
) {
  const c: Record<string, unknown> = {
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.system_fingerprint,
    choices,
  };
  if (withUsage) c.usage = usage ?? null;
  return c;
}
