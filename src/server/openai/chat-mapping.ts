// Choice updates -> /v1/chat/completions responses and stream chunks, in OpenAI's shapes.
import { randomBytes } from 'node:crypto';
import type { ParsedToolCall } from '../../parse/tool-calls.js';
import type { ChoiceFinish, ChoiceUpdate } from '../generate.js';
import { chatLogprobs, type ChatTokenLogprob, type TokenBytes, type TokenNaming } from './logprobs.js';
import { stopReason } from './vllm-output.js';

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
  system_fingerprint: string;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

export interface ChatView {
  /** The conf's reasoning parser is on: reasoning goes to `reasoning_content`. */
  reasoningField: boolean;
  /** Logprobs were asked for, with this many alternatives. */
  logprobs?: number;
  tok: TokenBytes;
  /** vLLM's return_token_ids: each choice lists its token ids. */
  tokenIds?: boolean;
  /** The model's end token, which vLLM's stop_reason leaves out. */
  eosTokenId?: number;
  /** How logprobs name tokens (vLLM's return_tokens_as_token_ids: by id). */
  tokenNaming?: TokenNaming;
  /** vLLM's include_reasoning false: the separated reasoning is left out of the answer. */
  omitReasoning?: boolean;
}

export interface ToolCallOut {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export function toolCallId(): string {
  return `call_${randomBytes(12).toString('hex')}`;
}

export function toToolCall(call: ParsedToolCall): ToolCallOut {
  return { id: toolCallId(), type: 'function', function: { name: call.name, arguments: call.arguments } };
}

/** Collects a choice's updates into the non-streaming message. */
export class ChatChoiceAccumulator {
  content = '';
  reasoning = '';
  toolCalls: ToolCallOut[] = [];
  logprobs: ChatTokenLogprob[] = [];
  finishReason: ChoiceFinish = 'stop';
  stopReason: string | number | null = null;
  completionTokens = 0;
  readonly tokenIds: number[] = [];

  constructor(
    readonly index: number,
    private readonly view: ChatView,
    /** vLLM's echo: the text the answer starts with. */
    echoed = '',
  ) {
    this.content = echoed;
  }

  add(u: ChoiceUpdate): void {
    this.content += u.content;
    if (!this.view.omitReasoning) this.reasoning += u.reasoning;
    for (const c of u.toolCalls) this.toolCalls.push(toToolCall(c));
    if (this.view.logprobs !== undefined) this.logprobs.push(...chatLogprobs(this.view.tok, u.logprobs, this.view.logprobs, this.view.tokenNaming));
    if (this.view.tokenIds && u.tokenIds) this.tokenIds.push(...u.tokenIds);
    if (u.finishReason) {
      this.finishReason = u.finishReason;
      this.stopReason = stopReason(u, this.view.eosTokenId);
    }
    this.completionTokens = u.completionTokens;
  }

  toChoice() {
    const message: Record<string, unknown> = {
      role: 'assistant',
      // null when the turn is only calls or only reasoning, as OpenAI and vLLM answer.
      content: this.content.length > 0 || (this.toolCalls.length === 0 && this.reasoning.length === 0) ? this.content : null,
    };
    if (this.view.reasoningField) {
      // Under both names: DeepSeek's `reasoning_content`, which most clients read, and `reasoning`,
      // which vLLM answers with since it renamed the field (and its newer clients read).
      message.reasoning_content = this.reasoning.length > 0 ? this.reasoning : null;
      message.reasoning = message.reasoning_content;
    }
    if (this.toolCalls.length > 0) message.tool_calls = this.toolCalls;
    const choice: Record<string, unknown> = {
      index: this.index,
      message,
      logprobs: this.view.logprobs !== undefined ? { content: this.logprobs } : null,
      finish_reason: this.finishReason,
      stop_reason: this.stopReason,
    };
    if (this.view.tokenIds) choice.token_ids = this.tokenIds;
    return choice;
  }
}

export function chatResponse(meta: ResponseMeta, choices: ChatChoiceAccumulator[], usage: Usage) {
  return {
    id: meta.id,
    object: 'chat.completion' as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.system_fingerprint,
    choices: choices.map((c) => c.toChoice()),
    usage,
  };
}

/** Turns one choice's updates into stream deltas; tool calls go out name first, then arguments. */
export class ChatChunker {
  /** Tool calls sent so far, per choice: a call's `index` counts within its choice. */
  private readonly calls = new Map<number, number>();
  private promptIdsSent = false;

  constructor(
    private readonly meta: ResponseMeta,
    private readonly view: ChatView,
    private readonly withUsage: boolean,
    /** stream_options.continuous_usage_stats: the usage so far, which every chunk then carries (vLLM's). */
    private readonly usageSoFar?: () => Usage,
  ) {}

  chunk(choices: unknown[], usage?: Usage | null): Record<string, unknown> {
    const c: Record<string, unknown> = {
      id: this.meta.id,
      object: 'chat.completion.chunk',
      created: this.meta.created,
      model: this.meta.model,
      system_fingerprint: this.meta.system_fingerprint,
      choices,
    };
    if (this.withUsage) c.usage = usage ?? this.usageSoFar?.() ?? null;
    return c;
  }

  /** A choice's first chunk; with return_token_ids the stream's very first one carries the prompt's ids, as vLLM's does. */
  roleChunk(index: number, promptIds?: readonly number[]) {
    const chunk = this.chunk([this.withIds({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }, [])]);
    if (promptIds && !this.promptIdsSent) {
      this.promptIdsSent = true;
      chunk.prompt_token_ids = promptIds;
    }
    return chunk;
  }

  private withIds(choice: Record<string, unknown>, ids: number[]): Record<string, unknown> {
    if (this.view.tokenIds) choice.token_ids = ids;
    return choice;
  }

  /** vLLM's echo when streaming: the continued assistant message, as a content delta of its own. */
  echoChunk(index: number, text: string) {
    return this.chunk([this.withIds({ index, delta: { content: text }, logprobs: null, finish_reason: null }, [])]);
  }

  /** Zero or more chunks for one update (none when it carries nothing visible). */
  updateChunks(u: ChoiceUpdate): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    // The update's token ids go out once, on the first chunk it makes.
    let ids = u.tokenIds ?? [];
    const takeIds = (): number[] => {
      const taken = ids;
      ids = [];
      return taken;
    };
    const logprobs = this.view.logprobs !== undefined && u.logprobs.length > 0 ? { content: chatLogprobs(this.view.tok, u.logprobs, this.view.logprobs, this.view.tokenNaming) } : null;
    const delta: Record<string, unknown> = {};
    if (u.reasoning.length > 0 && !this.view.omitReasoning) {
      delta.reasoning_content = u.reasoning;
      delta.reasoning = u.reasoning;  // (both names, as in the message above)
    }
    if (u.content.length > 0) delta.content = u.content;
    const hasText = Object.keys(delta).length > 0;
    if (hasText || (logprobs && u.toolCalls.length === 0)) out.push(this.chunk([this.withIds({ index: u.index, delta, logprobs, finish_reason: null }, takeIds())]));
    let pendingLogprobs = hasText ? null : logprobs;
    for (const call of u.toolCalls) {
      const at = this.calls.get(u.index) ?? 0;
      this.calls.set(u.index, at + 1);
      const head = { index: at, id: toolCallId(), type: 'function', function: { name: call.name, arguments: '' } };
      out.push(this.chunk([this.withIds({ index: u.index, delta: { tool_calls: [head] }, logprobs: null, finish_reason: null }, takeIds())]));
      const args = { index: at, function: { arguments: call.arguments } };
      out.push(this.chunk([this.withIds({ index: u.index, delta: { tool_calls: [args] }, logprobs: pendingLogprobs, finish_reason: null }, takeIds())]));
      pendingLogprobs = null;
    }
    if (u.finishReason)
      out.push(this.chunk([this.withIds({ index: u.index, delta: {}, logprobs: null, finish_reason: u.finishReason, stop_reason: stopReason(u, this.view.eosTokenId) }, takeIds())]));
    return out;
  }
}
