// Splits streamed answer text into the think block and the answer, for servers that keep
// `<think>...</think>` inline in content (grps_trtllm's default). The block counts only when the
// output opens with `<think>` (after whitespace); a tag split across chunks is held back until
// it is whole, so no fragment of a tag ever shows.
const OPEN = '<think>';
const CLOSE = '</think>';

/** How many characters at the end of text could be the start of marker. */
function partialSuffix(text, marker) {
  for (let n = Math.min(marker.length - 1, text.length); n > 0; n--) {
    if (marker.startsWith(text.slice(text.length - n))) return n;
  }
  return 0;
}

export class ThinkSplitter {
  constructor() {
    this.state = 'start';
    this.held = '';
    /** false between `</think>` and the first non-blank answer text. */
    this.answerStarted = true;
  }

  /** @returns {{reasoning: string, content: string}} the text that is certain so far. */
  push(text) {
    let buf = this.held + text;
    this.held = '';
    const out = { reasoning: '', content: '' };
    if (this.state === 'start') {
      const trimmed = buf.trimStart();
      if (trimmed.length === 0 || (trimmed.length < OPEN.length && OPEN.startsWith(trimmed))) {
        this.held = buf;
        return out;
      }
      if (trimmed.startsWith(OPEN)) {
        buf = trimmed.slice(OPEN.length);
        this.state = 'reasoning';
      } else {
        this.state = 'content';
      }
    }
    if (this.state === 'reasoning') {
      const end = buf.indexOf(CLOSE);
      if (end < 0) {
        const keep = partialSuffix(buf, CLOSE);
        out.reasoning = buf.slice(0, buf.length - keep);
        this.held = buf.slice(buf.length - keep);
        return out;
      }
      out.reasoning = buf.slice(0, end);
      buf = buf.slice(end + CLOSE.length);
      this.state = 'content';
      this.answerStarted = false;
    }
    // The blank lines between `</think>` and the answer may come in later chunks: drop them all.
    if (this.answerStarted === false) {
      buf = buf.replace(/^\s+/, '');
      if (buf.length > 0) this.answerStarted = true;
    }
    out.content = buf;
    return out;
  }

  /** What was held back at the end of the stream. */
  finish() {
    const rest = this.held;
    this.held = '';
    if (this.state === 'reasoning') return { reasoning: rest, content: '' };
    return { reasoning: '', content: rest };
  }

  get inReasoning() {
    return this.state === 'reasoning';
  }
}
