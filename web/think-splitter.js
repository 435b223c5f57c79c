// Splits streamed answer text into the think block and the answer, for servers that keep
// `<think>...</think>` inline in content (grps_trtllm's default). The block counts when the
// output opens with `<think>` (after whitespace), or, as vLLM's Qwen3 reasoning parser reads it,
// when a `</think>` comes with no `<think>` before it: Qwen3 "Thinking" templates open the block
// in the prompt, so the model writes only its end. Until that end arrives such text cannot be
// told from an answer, so it is given as content and taken back (contentWasReasoning) once it
// turns out to be reasoning; an output with no `</think>` stays all answer. grpst's own server
// hands the prompt's `<think>` back at the head of such content, so this guess serves other
// servers. A tag split across chunks is held back until it is whole, so no fragment of a tag
// ever shows.
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
    /** start -> reasoning (opened with `<think>`) or unopened (maybe reasoning) -> content. */
    this.state = 'start';
    this.held = '';
    /** unopened: all the text so far, and how much of it has gone out as content. */
    this.unopened = '';
    this.shownAsContent = 0;
    /** false between `</think>` and the first non-blank answer text. */
    this.answerStarted = true;
  }

  /**
   * @returns {{reasoning: string, content: string, contentWasReasoning: boolean}} the text that
   * is certain so far. contentWasReasoning: all the content given before this part was the
   * reasoning, which this part's reasoning repeats; it is no longer part of the answer.
   */
  push(text) {
    let buf = this.held + text;
    this.held = '';
    const out = { reasoning: '', content: '', contentWasReasoning: false };
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
        this.state = 'unopened';
      }
    }
    if (this.state === 'unopened') {
      // Searched from just before this chunk, so a tag cut between chunks is found without
      // going over the whole answer again for every chunk.
      const from = Math.max(0, this.unopened.length - CLOSE.length);
      this.unopened += buf;
      const end = this.unopened.indexOf(CLOSE, from);
      const open = this.unopened.indexOf(OPEN, from);
      if (end >= 0 && (open < 0 || end < open)) {
        out.reasoning = this.unopened.slice(0, end);
        out.contentWasReasoning = this.shownAsContent > 0;
        buf = this.unopened.slice(end + CLOSE.length);
        this.answerStarted = false;
      } else if (open >= 0) {
        // A `<think>` mid-answer is text, and so is any `</think>` after it.
        buf = this.unopened.slice(this.shownAsContent);
      } else {
        const keep = partialSuffix(this.unopened, CLOSE);
        out.content = this.unopened.slice(this.shownAsContent, this.unopened.length - keep);
        this.shownAsContent = this.unopened.length - keep;
        return out;
      }
      this.unopened = '';
      this.shownAsContent = 0;
      this.state = 'content';
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
    const out = { reasoning: '', content: '', contentWasReasoning: false };
    if (this.state === 'reasoning') out.reasoning = this.held;
    else if (this.state === 'unopened') out.content = this.unopened.slice(this.shownAsContent);
    else out.content = this.held;
    this.held = '';
    this.unopened = '';
    this.shownAsContent = 0;
    return out;
  }

  get inReasoning() {
    return this.state === 'reasoning';
  }
}
