// Splits Qwen3 output into its think block and the answer, as text streams in. The block counts
// only when the output opens with `<think>` (after optional whitespace) or the prompt already
// opened it; anything else is answer, so an answer is never mistaken for reasoning. A block the
// generation cut off (no `</think>`) stays reasoning: it is returned, not dropped.
import { partialMarkerLength } from './held-suffix.js';

export const thinkOpen = '<think>';
export const thinkClose = '</think>';

export type ReasoningSegment =
  /** The tags (the opening one with any whitespace before it): kept only when shown inline. */
  | { kind: 'open'; text: string }
  | { kind: 'close'; text: string }
  | { kind: 'reasoning'; text: string }
  | { kind: 'content'; text: string };

type State = 'start' | 'reasoning' | 'content';

export class ReasoningSplitter {
  private state: State;
  private held = '';

  /** startInReasoning: the prompt ends inside an open `<think>` (templates that pre-open it). */
  constructor(opts: { startInReasoning?: boolean } = {}) {
    this.state = opts.startInReasoning ? 'reasoning' : 'start';
  }

  get inReasoning(): boolean {
    return this.state === 'reasoning';
  }

  push(text: string): ReasoningSegment[] {
    const out: ReasoningSegment[] = [];
    let buf = this.held + text;
    this.held = '';
    if (this.state === 'start') {
      const trimmed = buf.trimStart();
      if (trimmed.length === 0 || (trimmed.length < thinkOpen.length && thinkOpen.startsWith(trimmed))) {
        this.held = buf;
        return out;
      }
      if (trimmed.startsWith(thinkOpen)) {
        const tagEnd = buf.length - trimmed.length + thinkOpen.length;
        out.push({ kind: 'open', text: buf.slice(0, tagEnd) });
        buf = buf.slice(tagEnd);
        this.state = 'reasoning';
      } else {
        this.state = 'content';
      }
    }
    if (this.state === 'reasoning') {
      const end = buf.indexOf(thinkClose);
      if (end < 0) {
        const keep = partialMarkerLength(buf, [thinkClose]);
        pushText(out, 'reasoning', buf.slice(0, buf.length - keep));
        this.held = buf.slice(buf.length - keep);
        return out;
      }
      pushText(out, 'reasoning', buf.slice(0, end));
      out.push({ kind: 'close', text: thinkClose });
      buf = buf.slice(end + thinkClose.length);
      this.state = 'content';
    }
    pushText(out, 'content', buf);
    return out;
  }

  finish(): ReasoningSegment[] {
    const rest = this.held;
    this.held = '';
    if (rest.length === 0) return [];
    // Only whitespace or a partial `<think>` arrived before the end: that is answer text.
    if (this.state === 'start') return [{ kind: 'content', text: rest }];
    return [{ kind: this.state === 'reasoning' ? 'reasoning' : 'content', text: rest }];
  }
}

function pushText(out: ReasoningSegment[], kind: 'reasoning' | 'content', text: string): void {
  if (text.length > 0) out.push({ kind, text });
}
