// Splits Qwen3 output into its think block and the answer, as text streams in. The block counts
// only when the output opens with `<think>` (after optional whitespace) or the prompt already
// opened it; anything else is answer, so an answer is never mistaken for reasoning. A block the
// generation cut off (no `</think>`) stays reasoning: it is returned, not dropped. A block the
// prompt opened can have its opening tag given back as the 'open' segment, so that text which
// keeps the tags inline holds the whole block, as it does where the model writes the tag itself.
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
  /** The prompt's opening tag, still to be handed out as the first segment. */
  private opening: string;

  /**
   * startInReasoning: the prompt ends inside an open `<think>` (templates that pre-open it);
   * opening: the prompt's text from that tag on, handed out first as the 'open' segment.
   */
  constructor(opts: { startInReasoning?: boolean; opening?: string } = {}) {
    this.state = opts.startInReasoning ? 'reasoning' : 'start';
    this.opening = opts.startInReasoning ? (opts.opening ?? '') : '';
  }

  get inReasoning(): boolean {
    return this.state === 'reasoning';
  }

  push(text: string): ReasoningSegment[] {
    const out = this.takeOpening();
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
    const out = this.takeOpening();
    const rest = this.held;
    this.held = '';
    if (rest.length === 0) return out;
    // Only whitespace or a partial `<think>` arrived before the end: that is answer text.
    if (this.state === 'start') out.push({ kind: 'content', text: rest });
    else out.push({ kind: this.state === 'reasoning' ? 'reasoning' : 'content', text: rest });
    return out;
  }

  private takeOpening(): ReasoningSegment[] {
    if (this.opening.length === 0) return [];
    const out: ReasoningSegment[] = [{ kind: 'open', text: this.opening }];
    this.opening = '';
    return out;
  }
}

function pushText(out: ReasoningSegment[], kind: 'reasoning' | 'content', text: string): void {
  if (text.length > 0) out.push({ kind, text });
}
