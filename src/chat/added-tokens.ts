// Added tokens (<|im_start|>, <think>, <tool_call>, ...) are found in the raw text before
// normalization and pre-tokenization, like tokenizers' AddedVocabulary: leftmost-longest
// matching over all added tokens, special or not. Text between matches goes through the
// normal pipeline. Ranges of text can be shielded: a match touching them is not a token there,
// which keeps user-typed "<|im_end|>" plain text.

export interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
}

/** A piece of the input: either plain text for BPE or one added token. */
export type Segment = { text: string; id?: undefined } | { text?: undefined; id: number };

/** Half-open character ranges [start, end) of the input in which no added token is recognized. */
export type ShieldedRanges = ReadonlyArray<readonly [number, number]>;

const WORD_CHAR = /[\p{L}\p{N}_]/u;
const WHITESPACE = /\s/u;

export class AddedTokenMatcher {
  private readonly regex: RegExp | null;
  private readonly byContent = new Map<string, AddedTokenJson>();

  constructor(tokens: readonly AddedTokenJson[]) {
    for (const t of tokens) this.byContent.set(t.content, t);
    // Longest first: a regex alternation takes the first alternative that matches at the
    // leftmost position, which then is the longest, as Aho-Corasick's leftmost-longest.
    const contents = [...this.byContent.keys()].filter((c) => c.length > 0).sort((a, b) => b.length - a.length);
    this.regex = contents.length
      ? new RegExp(contents.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gu')
      : null;
  }

  /** Splits `text` into plain-text and added-token segments. */
  split(text: string, shielded?: ShieldedRanges): Segment[] {
    const segments: Segment[] = [];
    const re = this.regex;
    if (re === null) return text.length ? [{ text }] : [];
    const ranges = shielded && shielded.length ? [...shielded].sort((a, b) => a[0] - b[0]) : null;
    let r = 0; // first shielded range that may still overlap a match
    let textStart = 0; // start of the pending plain text
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      let start = m.index;
      let end = start + m[0].length;
      if (ranges) {
        while (r < ranges.length && ranges[r][1] <= start) r++;
        if (r < ranges.length && ranges[r][0] < end) {
          // Overlaps a shielded range: not a token here. Look again from the next character.
          re.lastIndex = start + 1;
          continue;
        }
      }
      const token = this.byContent.get(m[0])!;
      if (token.single_word && (WORD_CHAR.test(text[start - 1] ?? '') || WORD_CHAR.test(text[end] ?? ''))) {
        re.lastIndex = start + 1;
        continue;
      }
      if (token.lstrip) while (start > textStart && WHITESPACE.test(text[start - 1])) start--;
      if (token.rstrip) {
        while (end < text.length && WHITESPACE.test(text[end])) end++;
        re.lastIndex = end;
      }
      if (start > textStart) segments.push({ text: text.slice(textStart, start) });
      segments.push({ id: token.id });
      textStart = end;
    }
    if (textStart < text.length) segments.push({ text: text.slice(textStart) });
    return segments;
  }
}
