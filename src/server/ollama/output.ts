// Choice updates -> Ollama's answers: /api/chat's message (content, thinking, tool_calls with
// arguments as objects) or /api/generate's response text, and the closing statistics in
// nanoseconds. One builder serves the streamed and the whole answer, so both carry the same text.
import { withWrittenKeyOrder } from '../../parse/ordered-json.js';
import type { ChoiceUpdate } from '../generate.js';
import { toolCallId } from '../openai/chat-mapping.js';

export interface OllamaToolCall {
  id: string;
  function: { index: number; name: string; arguments: Record<string, unknown> };
}

/** What one update adds to the answer. */
export interface TurnDelta {
  content: string;
  thinking: string;
  toolCalls: OllamaToolCall[];
}

export type DoneReason = 'stop' | 'length';

export class TurnBuilder {
  content = '';
  thinking = '';
  readonly toolCalls: OllamaToolCall[] = [];
  doneReason: DoneReason = 'stop';
  evalCount = 0;
  /** performance.now() of the first generated token, and of the last update. */
  private firstToken?: number;
  private last?: number;

  constructor(
    /** performance.now() when the request arrived, and when it left the admission queue. */
    private readonly arrival: number,
    private readonly admitted: number,
    private readonly promptTokens: number,
  ) {}

  add(u: ChoiceUpdate): TurnDelta {
    const now = performance.now();
    if (this.firstToken === undefined && u.completionTokens > 0) this.firstToken = now;
    this.last = now;
    this.evalCount = u.completionTokens;
    this.content += u.content;
    this.thinking += u.reasoning;
    const calls = u.toolCalls.map((c, i) => ({ id: toolCallId(), function: { index: this.toolCalls.length + i, name: c.name, arguments: argumentsObject(c.arguments) } }));
    this.toolCalls.push(...calls);
    if (u.finishReason) this.doneReason = u.finishReason === 'length' ? 'length' : 'stop';
    return { content: u.content, thinking: u.reasoning, toolCalls: calls };
  }

  /** Ollama's statistics: prompt evaluation runs from admission to the first token, evaluation from there on. */
  stats() {
    const end = this.last ?? performance.now();
    const first = this.firstToken ?? end;
    return {
      total_duration: ns(performance.now() - this.arrival),
      // The model is loaded before the server takes requests: no request waits for a load.
      load_duration: 0,
      prompt_eval_count: this.promptTokens,
      prompt_eval_duration: ns(first - this.admitted),
      eval_count: this.evalCount,
      eval_duration: ns(end - first),
    };
  }
}

/** Milliseconds as Ollama's durations: whole nanoseconds. */
export const ns = (ms: number) => Math.max(0, Math.round(ms * 1e6));

/** A chat message of the answer; thinking and tool_calls only when there are some, as Ollama writes them. */
export function chatMessage(d: TurnDelta): Record<string, unknown> {
  const message: Record<string, unknown> = { role: 'assistant', content: d.content };
  if (d.thinking.length > 0) message.thinking = d.thinking;
  if (d.toolCalls.length > 0) message.tool_calls = d.toolCalls;
  return message;
}

/** /api/generate's text fields for the same delta. */
export function generateFields(d: TurnDelta): Record<string, unknown> {
  const fields: Record<string, unknown> = { response: d.content };
  if (d.thinking.length > 0) fields.thinking = d.thinking;
  return fields;
}

/**
 * A call's arguments as the object Ollama's clients read, keys in the order the model wrote them.
 * Arguments that are not an object (a model that wrote a bare string) are kept under "arguments"
 * so that nothing the model wrote is lost.
 */
function argumentsObject(args: string): Record<string, unknown> {
  let v: unknown = args;
  try {
    v = withWrittenKeyOrder(args, JSON.parse(args));
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // not JSON: kept as the string it is
  }
  return { arguments: v };
}
