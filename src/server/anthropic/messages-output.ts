// Choice updates -> the Messages API's content blocks, and (streaming) its events. One builder
// serves both paths, so a streamed message ends with exactly the blocks a non-streamed one has.
// Blocks open in the order the model writes them: thinking, text, then one tool_use per call.
import { createHash, randomBytes } from 'node:crypto';
import type { ChoiceUpdate } from '../generate.js';

export type ContentBlock =
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'text'; text: string; citations: null }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';

/** Sends one event of the stream; the builder supplies its data, `type` included. */
export type MessageEventSink = (type: string, data: Record<string, unknown>) => Promise<void>;

export function messageId(): string {
  return `msg_${randomBytes(12).toString('hex')}`;
}

function toolUseId(): string {
  return `toolu_${randomBytes(12).toString('hex')}`;
}

export class MessageBuilder {
  readonly content: ContentBlock[] = [];
  outputTokens = 0;
  stopReason: StopReason = 'end_turn';
  stopSequence: string | null = null;
  private open?: Extract<ContentBlock, { type: 'thinking' | 'text' }>;

  constructor(private readonly emit?: MessageEventSink) {}

  async add(u: ChoiceUpdate): Promise<void> {
    this.outputTokens = u.completionTokens;
    if (u.reasoning.length > 0) await this.addText('thinking', u.reasoning);
    if (u.content.length > 0) await this.addText('text', u.content);
    for (const call of u.toolCalls) await this.addToolUse(call.name, call.arguments);
    if (u.finishReason) {
      this.stopReason = u.finishReason === 'length' ? 'max_tokens' : u.finishReason === 'tool_calls' ? 'tool_use' : u.stopString !== undefined ? 'stop_sequence' : 'end_turn';
      this.stopSequence = u.stopString ?? null;
    }
  }

  async finish(): Promise<void> {
    await this.close();
  }

  private async addText(kind: 'thinking' | 'text', text: string): Promise<void> {
    if (this.open?.type !== kind) {
      await this.close();
      const block: ContentBlock = kind === 'thinking' ? { type: 'thinking', thinking: '', signature: '' } : { type: 'text', text: '', citations: null };
      this.content.push(block);
      this.open = block;
      await this.emit?.('content_block_start', { type: 'content_block_start', index: this.content.length - 1, content_block: { ...block } });
    }
    const block = this.open;
    const index = this.content.length - 1;
    if (block.type === 'thinking') {
      block.thinking += text;
      await this.emit?.('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: text } });
    } else {
      block.text += text;
      await this.emit?.('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text } });
    }
  }

  private async addToolUse(name: string, args: string): Promise<void> {
    await this.close();
    const { input, json } = argumentsObject(args);
    const block: ContentBlock = { type: 'tool_use', id: toolUseId(), name, input };
    this.content.push(block);
    const index = this.content.length - 1;
    await this.emit?.('content_block_start', { type: 'content_block_start', index, content_block: { ...block, input: {} } });
    // The arguments as the model wrote them (key order kept); the client parses them into input.
    await this.emit?.('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: json } });
    await this.emit?.('content_block_stop', { type: 'content_block_stop', index });
  }

  private async close(): Promise<void> {
    const block = this.open;
    if (!block) return;
    this.open = undefined;
    const index = this.content.length - 1;
    if (block.type === 'thinking') {
      // Anthropic signs every thinking block and streams the signature last, as a signature_delta;
      // clients keep a thinking block for the next turn only when it carries one.
      block.signature = thinkingSignature(block.thinking);
      await this.emit?.('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: block.signature } });
    }
    await this.emit?.('content_block_stop', { type: 'content_block_stop', index });
  }
}

/**
 * A thinking block's signature. Anthropic's lets its API verify thinking handed back to it; this
 * server reads handed-back thinking as it is, so a digest of the text serves: opaque, non-empty,
 * and the same for a streamed block as for the non-streamed one.
 */
function thinkingSignature(thinking: string): string {
  return createHash('sha256').update(thinking).digest('base64');
}

/**
 * A call's arguments as the input object. The tool-call parser hands over JSON text; arguments
 * that are not an object (a model that wrote a bare string) are kept under "arguments" so that
 * nothing the model wrote is lost.
 */
function argumentsObject(args: string): { input: Record<string, unknown>; json: string } {
  let v: unknown = args;
  try {
    v = JSON.parse(args);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return { input: v as Record<string, unknown>, json: args };
  } catch {
    // not JSON: kept as the string it is
  }
  const input = { arguments: v };
  return { input, json: JSON.stringify(input) };
}
