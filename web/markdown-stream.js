// Markdown for a streamed answer, rendered incrementally: blocks that no later text can change are
// rendered once and their DOM nodes kept; only the trailing, still-growing part is rendered again
// on each frame. Re-rendering the whole answer every frame costs time growing with its length and
// replaces nodes a reader is selecting or scrolling through. Once the stream ends the answer's
// HTML is exactly what one render of the whole text gives.
//
// A block is final once a blank line and the first characters of the next top-level block follow
// it: a blank line closes paragraphs, headings, tables, block quotes and closed fences for good
// (an unclosed fence runs to the end of the text, so it is always the last block). Lists and
// indented code are the exception, continued across blank lines by list items and indented lines:
// after them the next block counts only once its first line is whole, or begins with a character
// that can start neither. Where the blocks lie comes from markdown-it's own parse, never from a
// second reading of markdown that could disagree with it about fences or lists.

/**
 * The page's markdown-it: raw HTML in the answer shown as text, links opening elsewhere, table
 * alignment as classes. markdownit: the factory (window.markdownit in the browser).
 */
export function createMarkdown(markdownit) {
  const md = markdownit({ html: false, linkify: true, breaks: true });
  // Links from model output open elsewhere and carry nothing back to this page.
  const defaultLinkOpen = md.renderer.rules.link_open || ((tokens, i, options, env, self) => self.renderToken(tokens, i, options));
  md.renderer.rules.link_open = (tokens, i, options, env, self) => {
    tokens[i].attrSet('target', '_blank');
    tokens[i].attrSet('rel', 'noopener noreferrer');
    return defaultLinkOpen(tokens, i, options, env, self);
  };
  // Table alignment comes as style="text-align:..." attributes, which the page's content security
  // policy (no inline styles) would drop: it becomes a class the style sheet aligns.
  for (const cell of ['th_open', 'td_open']) {
    md.renderer.rules[cell] = (tokens, i, options, env, self) => {
      const align = /text-align:\s*(left|right|center)/.exec(tokens[i].attrGet('style') || '');
      if (tokens[i].attrGet('style') !== null) tokens[i].attrs = tokens[i].attrs.filter(([name]) => name !== 'style');
      if (align) tokens[i].attrJoin('class', `align-${align[1]}`);
      return self.renderToken(tokens, i, options);
    };
  }
  // A code block comes with a head naming its language and a Copy button (message-actions.js
  // handles its clicks). Being part of the markup keeps a streamed answer the same HTML as one
  // render of it, with no pass over kept nodes afterwards; the style sheet hides the button until
  // the answer is finished.
  for (const rule of ['fence', 'code_block']) {
    const renderCode = md.renderer.rules[rule];
    md.renderer.rules[rule] = (tokens, i, options, env, self) => {
      const language = rule === 'fence' ? md.utils.unescapeAll(tokens[i].info).trim().split(/\s+/)[0] : '';
      const head = `<div class="code-head"><span class="code-lang">${md.utils.escapeHtml(language)}</span><button type="button" class="copy-code" aria-label="Copy code">Copy</button></div>`;
      return `<div class="code-block">${head}${renderCode(tokens, i, options, env, self)}</div>\n`;
    };
  }
  return md;
}

/** Line breaks as markdown-it counts them (it turns \r\n and a lone \r into \n before parsing). */
const lineBreak = /\r\n?|\n/g;

/** Offsets where each line of text starts. */
function lineStarts(text) {
  const starts = [0];
  lineBreak.lastIndex = 0;
  for (let m; (m = lineBreak.exec(text)); ) starts.push(m.index + m[0].length);
  return starts;
}

/** Blocks that later lines after a blank line can still extend. */
const continuedAcrossBlankLines = new Set(['bullet_list_open', 'ordered_list_open', 'code_block']);

/** The characters a list item or an indented line can begin with. */
const mayContinue = /^[ \t\d*+-]/;

/**
 * How much of text is final: the offset where the last top-level block that can no longer join
 * the blocks before it starts (0: none yet). Rendering text[0, offset) and the rest apart gives
 * what rendering the whole gives, whatever text is appended later (references aside: a link
 * that uses a definition given further on).
 */
export function stableLength(md, text, env = {}) {
  return stableCut(md.parse(text, env), text);
}

/** stableLength, from tokens already parsed from text. */
function stableCut(tokens, text) {
  const tops = tokens.filter((t) => t.level === 0 && t.nesting !== -1 && t.map);
  let starts = null;
  for (let j = tops.length - 1; j >= 1; j--) {
    starts ??= lineStarts(text);
    const first = tops[j].map[0];
    const previousLine = text.slice(starts[first - 1], starts[first]);
    // Without a blank line between them the boundary can still move: a setext underline or a
    // table's delimiter row turns the lines above it into another block.
    if (previousLine.trim() !== '') continue;
    const lineWhole = first + 1 < starts.length;
    const decided = lineWhole || !continuedAcrossBlankLines.has(tops[j - 1].type) || !mayContinue.test(text.slice(starts[first]));
    if (decided) return starts[first];
  }
  return 0;
}

/**
 * The HTML of a growing answer, in two parts: blocks that became final since the last update
 * (rendered once, to be kept), and the rest (rendered again on every update). No DOM: the page
 * puts the parts in place (StreamingMarkdown).
 */
export class MarkdownBlocks {
  constructor(md) {
    this.md = md;
    this.reset();
  }

  reset() {
    /** Length of the text already rendered as final blocks, and their HTML. */
    this.finalLength = 0;
    this.finalHtml = '';
    /** Link reference definitions of the final blocks, for the blocks after them. */
    this.references = {};
  }

  /** text: the whole answer so far (what was given before, and more). */
  update(text) {
    if (text.length < this.finalLength) this.reset();
    let rest = text.slice(this.finalLength);
    let env = this.restEnv();
    let tokens = this.md.parse(rest, env);
    const cut = stableCut(tokens, rest);
    let added = '';
    if (cut > 0) {
      // Rendered on its own, as a later full render sees it: references from blocks after it
      // (perhaps still half written) must not leak in.
      const settled = rest.slice(0, cut);
      const settledEnv = { references: this.references };
      added = this.md.render(settled, settledEnv);
      this.references = settledEnv.references || {};
      this.finalLength += cut;
      this.finalHtml += added;
      rest = rest.slice(cut);
      env = this.restEnv();
      tokens = this.md.parse(rest, env);
    }
    return { added, rest: this.md.renderer.render(tokens, this.md.options, env) };
  }

  /**
   * The last update, at the end of the stream. whole: null when the parts make up a render of
   * the whole text; otherwise that render, to replace them (a reference used before the block
   * that defines it).
   */
  finish(text) {
    const parts = this.update(text);
    // One full render, once per answer, so that the end result never depends on the splitting.
    const whole = this.md.render(text);
    return { ...parts, whole: this.finalHtml + parts.rest === whole ? null : whole };
  }

  restEnv() {
    return Object.keys(this.references).length > 0 ? { references: { ...this.references } } : {};
  }
}

/** A MarkdownBlocks rendered into element: final blocks appended once, the rest replaced. */
export class StreamingMarkdown {
  constructor(md, element) {
    this.blocks = new MarkdownBlocks(md);
    this.element = element;
    /** The nodes of the part rendered again on each update. */
    this.restNodes = [];
  }

  render(text) {
    if (text.length < this.blocks.finalLength) this.reset();
    this.place(this.blocks.update(text));
  }

  finish(text) {
    if (text.length < this.blocks.finalLength) this.reset();
    const parts = this.blocks.finish(text);
    if (parts.whole === null) this.place(parts);
    else {
      this.element.innerHTML = parts.whole;
      this.restNodes = [];
    }
  }

  /** Starts over with no text (the answer so far was the think block after all). */
  reset() {
    this.blocks.reset();
    this.element.replaceChildren();
    this.restNodes = [];
  }

  /** Whether a selection reaches into the part the next update replaces. */
  restHolds(selection) {
    if (!selection || selection.isCollapsed || selection.rangeCount === 0) return false;
    const range = selection.getRangeAt(0);
    return this.restNodes.some((node) => range.intersectsNode(node));
  }

  place({ added, rest }) {
    for (const node of this.restNodes) node.remove();
    if (added) this.element.append(fragment(added));
    const nodes = fragment(rest);
    this.restNodes = [...nodes.childNodes];
    this.element.append(nodes);
  }
}

function fragment(html) {
  const template = document.createElement('template');
  template.innerHTML = html;
  return template.content;
}
