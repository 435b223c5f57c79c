// Qwen3 (Hermes-style) tool calls: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
// blocks in the answer become structured calls, as text streams in. Tags may arrive split across
// tokens, so a tail that could start a tag is held back. A block whose body is not a JSON call
// is given back as the text the model wrote, never dropped. Whitespace between blocks is only a
// separator: it is dropped once a call has been made.
import { partialMarkerLength } from './held-suffix.js';
import { mayHoldIntegerKey, parseOrderedJson, stringifyOrderedJson } from './ordered-json.js';

export const toolCallOpen = '<tool_call>';
export const toolCallClose = '</tool_call>';

export interface ParsedToolCall {
  name: string;
  /** The arguments object as a JSON string (what OpenAI's `function.arguments` carries). */
  arguments: string;
}

export type ToolCallEvent = { kind: 'content'; text: string } | { kind: 'call'; call: ParsedToolCall };

type State = 'text' | 'call';

export class ToolCallParser {
  /**
   * forced: tool_choice required or named. An answer cut inside its block (max_tokens) is then
   * still the forced call, its arguments as far as they came (as vLLM returns it), never the
   * markup as content.
   */
  constructor(private readonly forced?: { only?: string }) {}

  private state: State = 'text';
  private held = '';
  /** Whitespace after the last visible text: released before more text, dropped before a call. */
  private pendingSpace = '';
  private body = '';
  private calls = 0;

  get callCount(): number {
    return this.calls;
  }

  push(text: string): ToolCallEvent[] {
    const out: ToolCallEvent[] = [];
    let buf = this.held + text;
    this.held = '';
    for (;;) {
      if (this.state === 'text') {
        const open = buf.indexOf(toolCallOpen);
        if (open < 0) {
          const keep = partialMarkerLength(buf, [toolCallOpen]);
          this.emitText(out, buf.slice(0, buf.length - keep));
          this.held = buf.slice(buf.length - keep);
          return out;
        }
        this.emitText(out, buf.slice(0, open));
        this.pendingSpace = '';
        this.state = 'call';
        this.body = '';
        buf = buf.slice(open + toolCallOpen.length);
      } else {
        const close = buf.indexOf(toolCallClose);
        if (close < 0) {
          const keep = partialMarkerLength(buf, [toolCallClose]);
          this.body += buf.slice(0, buf.length - keep);
          this.held = buf.slice(buf.length - keep);
          return out;
        }
        this.body += buf.slice(0, close);
        buf = buf.slice(close + toolCallClose.length);
        this.closeBlock(out, true);
      }
    }
  }

  finish(): ToolCallEvent[] {
    const out: ToolCallEvent[] = [];
    if (this.state === 'call') {
      this.body += this.held;
      this.held = '';
      this.closeBlock(out, false);
    } else {
      this.emitText(out, this.held);
      this.held = '';
    }
    if (this.calls === 0 && this.pendingSpace.length > 0) out.push({ kind: 'content', text: this.pendingSpace });
    this.pendingSpace = '';
    return out;
  }

  /** closed: the closing tag arrived; otherwise the output ended inside the block. */
  private closeBlock(out: ToolCallEvent[], closed: boolean): void {
    const call = parseToolCallBody(this.body) ?? (!closed && this.forced ? partialToolCall(this.body, this.forced.only) : null);
    if (call) {
      out.push({ kind: 'call', call });
      this.calls++;
    } else if (closed || !this.forced) {
      // Not a call: given back as the text the model wrote. (A forced call cut before even its
      // name reports nothing: the markup is not an answer.)
      out.push({ kind: 'content', text: toolCallOpen + this.body + (closed ? toolCallClose : '') });
    }
    this.body = '';
    this.state = 'text';
  }

  private emitText(out: ToolCallEvent[], text: string): void {
    if (text.length === 0) return;
    const all = this.pendingSpace + text;
    const trimmed = all.trimEnd();
    this.pendingSpace = all.slice(trimmed.length);
    if (trimmed.length > 0) {
      const last = out[out.length - 1];
      if (last && last.kind === 'content') last.text += trimmed;
      else out.push({ kind: 'content', text: trimmed });
    }
  }
}

/** A block body as a call, or null when it is not `{"name": string, "arguments"?: object}`. */
export function parseToolCallBody(body: string): ParsedToolCall | null {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { name, arguments: args, parameters } = value as Record<string, unknown>;
  if (typeof name !== 'string' || name.length === 0) return null;
  const given = args ?? parameters ?? {};
  if (typeof given === 'string') {
    // Some models write the arguments as a JSON string; it must still hold an object.
    try {
      const inner = JSON.parse(given) as unknown;
      if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) return null;
    } catch {
      return null;
    }
    return { name, arguments: given };
  }
  if (typeof given !== 'object' || given === null || Array.isArray(given)) return null;
  try {
    // Only integer-like keys ("2": ...) come out of JSON.parse out of order; without one, the
    // parsed value serializes as written and the body need not be walked again.
    if (!mayHoldIntegerKey(body)) return { name, arguments: JSON.stringify(given) };
    return { name, arguments: args != null ? orderedMember(body, 'arguments') : parameters != null ? orderedMember(body, 'parameters') : '{}' };
  } catch (err) {
    // Nesting deeper than the stack allows (JSON.parse takes more): not a call anyone can use,
    // so it is given back as text rather than failing the request.
    if (err instanceof RangeError) return null;
    throw err;
  }
}

/**
 * One member of the body object, serialized with its keys in the order the model wrote them
 * (JSON.stringify of the parsed value would move integer-like keys to the front).
 */
function orderedMember(body: string, key: string): string {
  const parsed = parseOrderedJson(body);
  const member = 'object' in parsed ? parsed.object.get(key) : undefined;
  if (!member) throw new Error(`tool call body lost its ${key} member`);
  return stringifyOrderedJson(member);
}

/**
 * A block cut off before its end: the function's name (written, or the one tool_choice names)
 * and the arguments text as far as it came. null when neither gives a name.
 */
export function partialToolCall(body: string, only: string | undefined): ParsedToolCall | null {
  const written = /"name"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(body);
  let name = only;
  if (written) {
    try {
      name = JSON.parse(`"${written[1]}"`) as string;
    } catch {
      // A broken escape: keep the named one.
    }
  }
  if (!name) return null;
  const args = /"(?:arguments|parameters)"\s*:\s*/.exec(body);
  return { name, arguments: args ? body.slice(args.index + args[0].length).trimEnd() : '' };
}
