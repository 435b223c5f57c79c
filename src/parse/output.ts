// One choice's output path: decoded text -> stop strings -> think block -> tool calls. Stop
// strings see the raw text (they end generation wherever they appear); the think splitter runs
// only when thinking is on, so an answer never lands in reasoning; tool calls are parsed only
// from the answer, never from inside the think block.
import { ReasoningSplitter, type ReasoningSegment } from './reasoning.js';
import { StopStringMatcher } from './stop-strings.js';
import { ToolCallParser, type ParsedToolCall } from './tool-calls.js';

export interface OutputOptions {
  stops: readonly string[];
  /** vLLM's include_stop_str_in_output: the matched stop string ends the text instead of being cut. */
  includeStop?: boolean;
  /** vLLM's min_tokens: stop strings count only once this many tokens are out. */
  minTokens?: number;
  /** Thinking is on for this request: look for a think block. */
  thinking: boolean;
  /** The prompt ends inside an open `<think>`. */
  startInReasoning?: boolean;
  /**
   * With startInReasoning, the tag as the generation prompt wrote it (`<think>\n`): inline, the
   * content starts with it, so the block reads there as it would had the model opened it.
   */
  promptOpening?: string;
  /** true: the think block goes to `reasoning`; false: it stays inline in `content`, tags included. */
  separateReasoning: boolean;
  /** Turn `<tool_call>` blocks of the answer into calls. */
  toolCalls: boolean;
  /** tool_choice required or named (`only`): a call cut off by max_tokens is still reported. */
  forcedToolCall?: { only?: string };
  /** parallel_tool_calls false: the answer ends with its first call; nothing after it is returned. */
  singleToolCall?: boolean;
}

export interface OutputDelta {
  content: string;
  reasoning: string;
  toolCalls: ParsedToolCall[];
  /** A stop string matched, or the only call allowed is complete: generation must end here. */
  stopped: boolean;
  /** The stop string that matched (Anthropic's stop_sequence reports it). */
  stopString?: string;
}

export class OutputParser {
  private readonly stops: StopStringMatcher;
  private readonly minTokens: number;
  private readonly splitter?: ReasoningSplitter;
  private readonly tools?: ToolCallParser;
  private readonly separate: boolean;
  private readonly singleToolCall: boolean;
  /** Reasoning mode drops the newlines between `</think>` and the answer. */
  private stripLeadingNewlines = false;
  private done = false;

  constructor(opts: OutputOptions) {
    this.stops = new StopStringMatcher(opts.stops, opts.includeStop ?? false);
    this.minTokens = opts.minTokens ?? 0;
    if (opts.thinking) this.splitter = new ReasoningSplitter({ startInReasoning: opts.startInReasoning, opening: opts.promptOpening });
    if (opts.toolCalls) this.tools = new ToolCallParser(opts.forcedToolCall);
    this.separate = opts.separateReasoning;
    this.singleToolCall = opts.singleToolCall ?? false;
  }

  get toolCallCount(): number {
    return this.tools?.callCount ?? 0;
  }

  /** Inside the think block: text now arriving is reasoning. */
  get inReasoning(): boolean {
    return this.splitter?.inReasoning ?? false;
  }

  /** tokens: how many tokens the text so far came from (for min_tokens; omitted, stops always count). */
  push(text: string, tokens = Infinity): OutputDelta {
    const delta = emptyDelta();
    if (this.done) return delta;
    const r = this.stops.push(text, tokens >= this.minTokens);
    this.route(r.text, delta);
    if (this.done) {
      // The one call allowed came in this text: what follows it is dropped, and generation ends.
      delta.stopped = true;
      return delta;
    }
    if (r.stop !== undefined) {
      this.flush(delta);
      delta.stopped = true;
      delta.stopString = r.stop;
    }
    return delta;
  }

  finish(): OutputDelta {
    const delta = emptyDelta();
    if (this.done) return delta;
    this.route(this.stops.finish(), delta);
    this.flush(delta);
    return delta;
  }

  private flush(delta: OutputDelta): void {
    if (this.splitter) for (const seg of this.splitter.finish()) this.segment(seg.kind, seg.text, delta);
    if (this.tools) this.answerEvents(this.tools.finish(), delta);
    this.done = true;
  }

  private route(text: string, delta: OutputDelta): void {
    if (text.length === 0) return;
    if (!this.splitter) return this.answer(text, delta);
    for (const seg of this.splitter.push(text)) this.segment(seg.kind, seg.text, delta);
  }

  private segment(kind: ReasoningSegment['kind'], text: string, delta: OutputDelta): void {
    if (this.done) return;
    if (kind === 'content') return this.answer(text, delta);
    if (!this.separate) {
      delta.content += text;
      return;
    }
    if (kind === 'reasoning') delta.reasoning += text;
    else if (kind === 'close') this.stripLeadingNewlines = true;
  }

  private answer(text: string, delta: OutputDelta): void {
    if (this.stripLeadingNewlines) {
      const rest = text.replace(/^\n+/, '');
      if (rest.length === 0) return;
      this.stripLeadingNewlines = false;
      text = rest;
    }
    if (!this.tools) {
      delta.content += text;
      return;
    }
    this.answerEvents(this.tools.push(text), delta);
  }

  private answerEvents(events: ReturnType<ToolCallParser['push']>, delta: OutputDelta): void {
    for (const ev of events) {
      if (this.done) return;
      if (ev.kind === 'content') delta.content += ev.text;
      else {
        delta.toolCalls.push(ev.call);
        if (this.singleToolCall) this.done = true;
      }
    }
  }
}

function emptyDelta(): OutputDelta {
  return { content: '', reasoning: '', toolCalls: [], stopped: false };
}
