// Responses kept in memory for previous_response_id, GET /v1/responses/{id} and its input_items,
// as OpenAI keeps them when store is on. Bounded by count and by size, oldest out first: a server
// that runs for weeks must not grow with every answer, and a chain whose start was evicted gets a
// 404 that says to send the whole input.
import type { TemplateMessage } from './openai/chat-messages.js';
import type { StoredInputItem } from './openai/responses-input-items.js';

export interface StoredResponse {
  /** The response object as it was answered, serialized (GET sends it as it is). */
  json: string;
  /** Every turn up to and including this response's answer, without its instructions (OpenAI does not carry them over). */
  conversation: TemplateMessage[];
  /** The items the request sent as input, as GET .../input_items lists them (oldest first). */
  inputItems: StoredInputItem[];
}

/** The most responses kept, and the most text (UTF-16 units, about bytes for ASCII) they may hold together. */
export const STORE_MAX_RESPONSES = 1024;
export const STORE_MAX_CHARS = 64 * 1024 * 1024;

export class ResponseStore {
  private readonly entries = new Map<string, { value: StoredResponse; chars: number }>();
  private chars = 0;

  constructor(
    private readonly maxResponses = STORE_MAX_RESPONSES,
    private readonly maxChars = STORE_MAX_CHARS,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  put(id: string, value: StoredResponse): void {
    this.delete(id);
    const turns = value.conversation.reduce((n, m) => n + m.content.length + (m.reasoning_content?.length ?? 0) + JSON.stringify(m.tool_calls ?? []).length, 0);
    const chars = value.json.length + turns + value.inputItems.reduce((n, item) => n + item.id.length + item.json.length, 0);
    // One response larger than the whole budget is not kept (its chain cannot continue from here).
    if (chars > this.maxChars) return;
    this.entries.set(id, { value, chars });
    this.chars += chars;
    for (const [oldest] of this.entries) {
      if (this.entries.size <= this.maxResponses && this.chars <= this.maxChars) break;
      this.delete(oldest);
    }
  }

  get(id: string): StoredResponse | undefined {
    return this.entries.get(id)?.value;
  }

  delete(id: string): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    this.entries.delete(id);
    this.chars -= e.chars;
    return true;
  }
}
