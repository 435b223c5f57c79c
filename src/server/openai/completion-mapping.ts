// Choice updates -> /v1/completions responses and stream chunks (OpenAI's legacy text shape).
import type { ChoiceFinish, ChoiceUpdate, PromptLogprobs } from '../generate.js';
import type { ResponseMeta, Usage } from './chat-mapping.js';
import { CompletionLogprobsBuilder, type CompletionLogprobs, type TokenBytes } from './logprobs.js';
import { vllmPromptLogprobs } from './prompt-logprobs.js';

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
  tok: TokenBytes;
}

/** One choice's text and logprobs, echo included. */
export class CompletionChoiceState {
  text = '';
  finishReason: ChoiceFinish = 'stop';
  completionTokens = 0;
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
      this.lp = new CompletionLogprobsBuilder(view.tok, view.logprobs);
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
    if (u.finishReason) this.finishReason = u.finishReason === 'tool_calls' ? 'stop' : u.finishReason;
    this.completionTokens = u.completionTokens;
    if (!this.lp || !this.all) return { text, logprobs: null };
    const part = this.lp.take();
    this.all.tokens.push(...part.tokens);
    this.all.token_logprobs.push(...part.token_logprobs);
    this.all.top_logprobs.push(...part.top_logprobs);
    this.all.text_offset.push(...part.text_offset);
    return { text, logprobs: part };
  }

  toChoice() {
    const choice: Record<string, unknown> = { index: this.index, text: this.text, logprobs: this.all ?? null, finish_reason: this.finishReason };
    if (this.view.promptLogprobs !== undefined) choice.prompt_logprobs = vllmPromptLogprobs(this.prompt.ids, this.promptLp, this.view.promptLogprobs, this.view.tok);
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
  choices: { index: number; text: string; logprobs: CompletionLogprobs | null; finish_reason: string | null }[],
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
