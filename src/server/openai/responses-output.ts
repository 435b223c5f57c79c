// Choice updates -> the Responses API's output items, and (streaming) its typed events. One
// builder serves both paths, so a streamed response ends with exactly the items a non-streamed
// one returns. Items open in the order the model writes them: reasoning, the answer message,
// then one function_call item per call.
import { randomBytes } from 'node:crypto';
import type { ChoiceUpdate } from '../generate.js';
import { toolCallId } from './chat-mapping.js';
import { chatLogprobs, type ChatTokenLogprob, type TokenBytes } from './logprobs.js';

export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

export interface OutputText {
  type: 'output_text';
  text: string;
  annotations: never[];
  /** Empty unless include asked for "message.output_text.logprobs". */
  logprobs: ChatTokenLogprob[];
}
export interface MessageItem {
  type: 'message';
  id: string;
  status: ItemStatus;
  role: 'assistant';
  content: OutputText[];
}
export interface ReasoningItem {
  type: 'reasoning';
  id: string;
  summary: { type: 'summary_text'; text: string }[];
  content: { type: 'reasoning_text'; text: string }[];
  status: ItemStatus;
}
export interface FunctionCallItem {
  type: 'function_call';
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: ItemStatus;
}
export type OutputItem = MessageItem | ReasoningItem | FunctionCallItem;

/** Sends one typed event; the builder adds `type` and nothing else (sequence numbers are the sink's). */
export type EventSink = (type: string, payload: Record<string, unknown>) => Promise<void>;

export function itemId(prefix: 'msg' | 'rs' | 'fc' | 'fco' | 'resp'): string {
  return `${prefix}_${randomBytes(16).toString('hex')}`;
}

export interface OutputView {
  /** Logprobs were asked for (include "message.output_text.logprobs"), with this many alternatives. */
  logprobs?: number;
  tok: TokenBytes;
}

export class ResponseOutputBuilder {
  readonly output: OutputItem[] = [];
  completionTokens = 0;
  /** Tokens of the think block (the last update's count). */
  reasoningTokens = 0;
  /** Prompt tokens the prefix cache supplied. */
  cachedPromptTokens = 0;
  finishReason?: ChoiceUpdate['finishReason'];
  private open?: MessageItem | ReasoningItem;

  constructor(
    private readonly view: OutputView,
    private readonly emit?: EventSink,
  ) {}

  async add(u: ChoiceUpdate): Promise<void> {
    this.completionTokens = u.completionTokens;
    if (u.cachedPromptTokens !== undefined) this.cachedPromptTokens = u.cachedPromptTokens;
    if (u.reasoningTokens !== undefined) this.reasoningTokens = u.reasoningTokens;
    if (u.reasoning.length > 0) await this.addReasoning(u.reasoning);
    const logprobs = this.view.logprobs !== undefined ? chatLogprobs(this.view.tok, u.logprobs, this.view.logprobs) : [];
    if (u.content.length > 0) await this.addText(u.content, logprobs);
    for (const call of u.toolCalls) await this.addCall(call.name, call.arguments);
    if (u.finishReason) this.finishReason = u.finishReason;
  }

  /** Closes the open item: incomplete when the output was cut by max_output_tokens. */
  async finish(): Promise<void> {
    await this.close(this.finishReason === 'length' ? 'incomplete' : 'completed');
  }

  private async addReasoning(text: string): Promise<void> {
    let item = this.open?.type === 'reasoning' ? this.open : undefined;
    if (!item) {
      await this.close('completed');
      item = { type: 'reasoning', id: itemId('rs'), summary: [], content: [], status: 'in_progress' };
      await this.start(item);
      item.content.push({ type: 'reasoning_text', text: '' });
      await this.emit?.('response.content_part.added', { item_id: item.id, output_index: this.output.length - 1, content_index: 0, part: { type: 'reasoning_text', text: '' } });
    }
    item.content[0].text += text;
    await this.emit?.('response.reasoning_text.delta', { item_id: item.id, output_index: this.output.length - 1, content_index: 0, delta: text });
  }

  private async addText(text: string, logprobs: ChatTokenLogprob[]): Promise<void> {
    let item = this.open?.type === 'message' ? this.open : undefined;
    if (!item) {
      await this.close('completed');
      item = { type: 'message', id: itemId('msg'), status: 'in_progress', role: 'assistant', content: [] };
      await this.start(item);
      const part: OutputText = { type: 'output_text', text: '', annotations: [], logprobs: [] };
      item.content.push(part);
      await this.emit?.('response.content_part.added', { item_id: item.id, output_index: this.output.length - 1, content_index: 0, part: structuredClone(part) });
    }
    const part = item.content[0];
    part.text += text;
    part.logprobs.push(...logprobs);
    await this.emit?.('response.output_text.delta', { item_id: item.id, output_index: this.output.length - 1, content_index: 0, delta: text, logprobs });
  }

  private async addCall(name: string, args: string): Promise<void> {
    await this.close('completed');
    const item: FunctionCallItem = { type: 'function_call', id: itemId('fc'), call_id: toolCallId(), name, arguments: '', status: 'in_progress' };
    await this.start(item);
    const at = this.output.length - 1;
    item.arguments = args;
    await this.emit?.('response.function_call_arguments.delta', { item_id: item.id, output_index: at, delta: args });
    await this.emit?.('response.function_call_arguments.done', { item_id: item.id, output_index: at, name, arguments: args });
    item.status = 'completed';
    await this.emit?.('response.output_item.done', { output_index: at, item: { ...item } });
  }

  private async start(item: OutputItem): Promise<void> {
    this.output.push(item);
    if (item.type !== 'function_call') this.open = item;
    await this.emit?.('response.output_item.added', { output_index: this.output.length - 1, item: structuredClone(item) });
  }

  private async close(status: 'completed' | 'incomplete'): Promise<void> {
    const item = this.open;
    if (!item) return;
    this.open = undefined;
    const at = this.output.indexOf(item);
    item.status = status;
    if (item.type === 'reasoning') {
      const text = item.content[0].text;
      await this.emit?.('response.reasoning_text.done', { item_id: item.id, output_index: at, content_index: 0, text });
      await this.emit?.('response.content_part.done', { item_id: item.id, output_index: at, content_index: 0, part: { type: 'reasoning_text', text } });
    } else {
      const part = item.content[0];
      await this.emit?.('response.output_text.done', { item_id: item.id, output_index: at, content_index: 0, text: part.text, logprobs: part.logprobs });
      await this.emit?.('response.content_part.done', { item_id: item.id, output_index: at, content_index: 0, part: structuredClone(part) });
    }
    await this.emit?.('response.output_item.done', { output_index: at, item: structuredClone(item) });
  }
}
