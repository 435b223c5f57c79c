// Pre-tokenization as tokenizers does it for byte-level BPE: a regex splits normalized text into
// pieces (kept, "Isolated"), BPE then runs on each piece separately. tokenizers compiles the
// pattern with Oniguruma, whose syntax and classes differ from JavaScript's; the translation
// below keeps Oniguruma's meaning so piece boundaries (and so ids) match exactly.
import { badInput } from '../util/errors.js';
import { maskUnknownToOniguruma } from './unicode-compat.js';

// Oniguruma's Unicode \s: U+0009..U+000D, U+0085, Zs, U+2028, U+2029. JavaScript's \s also takes
// U+FEFF and lacks U+0085, which would move piece boundaries around those characters.
const WS_MEMBERS = '\\t-\\r\\x85\\p{Zs}\\u2028\\u2029';

// Characters that Unicode simple case folding maps onto an ASCII letter, which (?i:...) in
// Oniguruma matches too ("'ſ" is a "'s" contraction).
const EXTRA_FOLDS: Record<string, string> = { s: 'ſ', k: 'K' };

function caseClassMembers(ch: string): string {
  const lower = ch.toLowerCase();
  return lower + lower.toUpperCase() + (EXTRA_FOLDS[lower] ?? '');
}

/** Oniguruma pattern (as tokenizers stores it) -> JavaScript pattern for the `u` flag. */
export function onigToJs(pattern: string): string {
  let out = '';
  let inClass = false;
  const groups: boolean[] = []; // per open group: does it switch case-insensitivity on?
  const caseless = () => groups.includes(true);
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const n = pattern[i + 1];
      if (n === undefined) throw unsupported(pattern, 'trailing backslash');
      if (n === 's' || n === 'S') {
        if (inClass && n === 'S') throw unsupported(pattern, '\\S inside a character class');
        out += inClass ? WS_MEMBERS : n === 's' ? `[${WS_MEMBERS}]` : `[^${WS_MEMBERS}]`;
        i++;
      } else if ((n === 'p' || n === 'P') && pattern[i + 2] === '{') {
        const end = pattern.indexOf('}', i);
        if (end < 0) throw unsupported(pattern, 'unterminated \\p{...}');
        out += pattern.slice(i, end + 1);
        i = end;
      } else {
        out += c + n;
        i++;
      }
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += caseless() && /[a-z]/i.test(c) ? caseClassMembers(c) : c;
    } else if (c === '[') {
      inClass = true;
      out += c;
      if (pattern[i + 1] === '^') out += pattern[++i];
      if (pattern[i + 1] === ']') out += '\\' + pattern[++i]; // a leading ] is a literal
    } else if (c === '(') {
      if (pattern.startsWith('(?i:', i)) {
        groups.push(true);
        out += '(?:';
        i += 3;
      } else if (pattern[i + 1] === '?' && /[imsx-]/.test(pattern[i + 2] ?? '')) {
        throw unsupported(pattern, `inline flags at ${i}`);
      } else {
        groups.push(false);
        out += c;
      }
    } else if (c === ')') {
      groups.pop();
      out += c;
    } else {
      out += caseless() && /[a-z]/i.test(c) ? `[${caseClassMembers(c)}]` : c;
    }
  }
  return out;
}

function unsupported(source: string, what: string) {
  return badInput(
    `tokenizer.json: the pre-tokenizer ${source} uses ${what}, which grpst does not support`,
    'use a Qwen2/Qwen3 checkpoint, whose tokenizer.json grpst supports',
  );
}

export interface PreTokenizerJson {
  type: string;
  pretokenizers?: PreTokenizerJson[];
  pattern?: { Regex?: string; String?: string };
  behavior?: string;
  invert?: boolean;
  add_prefix_space?: boolean;
  use_regex?: boolean;
}

/**
 * The pre-tokenizer of Qwen2/Qwen3 (and other byte-level BPE tokenizers written the same way):
 * Sequence[Split(regex, Isolated), ByteLevel(add_prefix_space false, use_regex false)].
 */
export class PreTokenizer {
  private constructor(private readonly regex: RegExp) {}

  static fromJson(json: PreTokenizerJson | null | undefined): PreTokenizer {
    const steps = json?.type === 'Sequence' ? (json.pretokenizers ?? []) : json ? [json] : [];
    const [split, byteLevel] = steps;
    const shape = JSON.stringify(json);
    if (steps.length !== 2 || split.type !== 'Split' || byteLevel.type !== 'ByteLevel') {
      throw unsupported(shape, 'steps other than Split followed by ByteLevel');
    }
    if (split.behavior !== 'Isolated' || split.invert) throw unsupported(shape, `Split behavior ${split.behavior}${split.invert ? ' inverted' : ''}`);
    if (byteLevel.use_regex !== false || byteLevel.add_prefix_space) throw unsupported(shape, 'a ByteLevel step with its own regex or prefix space');
    let pattern: string;
    if (split.pattern?.Regex !== undefined) pattern = onigToJs(split.pattern.Regex);
    else if (split.pattern?.String !== undefined) pattern = split.pattern.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else throw unsupported(shape, 'a Split without a pattern');
    return new PreTokenizer(new RegExp(pattern, 'gu'));
  }

  /** Calls `piece` for each pre-token of `text`, in order; together they cover all of `text`. */
  forEachPiece(text: string, piece: (p: string) => void): void {
    const re = this.regex;
    re.lastIndex = 0;
    let end = 0;
    // Matched on a copy in which characters newer than Oniguruma's tables are unassigned, as
    // tokenizers sees them; pieces are cut from the text itself (same offsets).
    const probe = maskUnknownToOniguruma(text);
    for (let m = re.exec(probe); m !== null; m = re.exec(probe)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      if (m.index > end) piece(text.slice(end, m.index));
      piece(probe === text ? m[0] : text.slice(m.index, m.index + m[0].length));
      end = m.index + m[0].length;
    }
    if (end < text.length) piece(text.slice(end));
  }
}
