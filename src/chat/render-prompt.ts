// Prompt building that keeps user text as text. The contents of user, system and tool messages
// (and tool descriptions) are wrapped in two marker characters before rendering, so their spans can be found in the
// rendered prompt; the markers are then removed and the prompt is tokenized with added tokens
// recognized everywhere except inside those spans. A user typing "<|im_end|>" or "<think>" gets
// the plain-text tokens of those characters, while the template's own markup gets the control
// tokens. Anything without such strings tokenizes exactly as Hugging Face tokenizes the render.
// Assistant messages (which the client sends back too) keep their <think> and <tool_call>
// blocks as tokens, since the model wrote them so and the template splits on them; only the
// special tokens they spell (<|im_end|>, <|im_start|>, <|endoftext|>: turn and document
// boundaries) are wrapped one by one, so a forged assistant turn cannot end itself early.
// Numbers JSON.parse changed in the request (1.0, 1e20, big integers) reach the template as
// PythonNumber markers, so tojson writes them as transformers does (parse/json-numbers.ts).
import { holdsWrittenNumbers, writtenNumber } from '../parse/json-numbers.js';
import { badInput } from '../util/errors.js';
import { objectInOrder } from '../util/key-order.js';
import type { ChatMessage, ChatTemplate, ChatTool, RenderOptions } from './chat-template.js';
import { PythonNumber, pythonNumber } from './jinja-numbers.js';
import { pythonStrip } from './jinja-strings.js';
import type { Tokenizer } from './tokenizer.js';

// Unicode noncharacters: reserved for a program's internal use, never meaningful in exchanged
// text, so removing them from the input loses nothing.
const OPEN = '\uFDD0';
const CLOSE = '\uFDD1';
const MARKERS = /[\uFDD0\uFDD1]/g;

/** Roles whose content comes from outside (the user, the caller, tools) and must stay text. */
const SHIELDED_ROLES = new Set(['user', 'system', 'tool']);

export interface ContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** A message as an API client sends it: content may be null or a list of text parts. */
export interface InputMessage {
  role: ChatMessage['role'];
  content?: string | ContentPart[] | null;
  reasoning_content?: string | null;
  tool_calls?: ChatMessage['tool_calls'];
  tool_call_id?: string;
  name?: string;
  [key: string]: unknown;
}

export interface Prompt {
  /** The rendered prompt. */
  text: string;
  /** Its token ids. */
  ids: number[];
  /** Ranges [start, end) of `text` that were tokenized with added tokens not recognized. */
  shielded: Array<[number, number]>;
  /**
   * False when the template itself looks at the content (e.g. Qwen3's check for a user message
   * wrapped in <tool_response>): the content was then opaque to it, so `text` can differ from
   * Hugging Face's rendering.
   */
  sameAsHf: boolean;
}

export interface PromptOptions extends RenderOptions {
  /** Default true here: a served chat request always ends with the assistant header. */
  addGenerationPrompt?: boolean;
  /**
   * End the prompt right after the last message's content, for the model to continue it, as
   * transformers' continue_final_message does (pass addGenerationPrompt false with it).
   */
  continueFinalMessage?: boolean;
}

// transformers' continue_final_message: this tag is appended to the final content, and the
// render is cut where it lands. Finding the content itself instead fails where the template
// changes it (Qwen3 drops its leading newlines) or where the same text comes later (in the
// <|im_end|> after it, in the tool calls after it).
const CONTINUE_TAG = 'CONTINUE_FINAL_MESSAGE_TAG ';

export function renderPrompt(
  template: ChatTemplate,
  tokenizer: Tokenizer,
  messages: readonly InputMessage[],
  opts: PromptOptions = {},
): Prompt {
  const { text, shielded, hf } = renderParts(template, tokenizer, messages, opts, true);
  return { text, shielded, ids: tokenizer.encode(text, { noSpecialIn: shielded }), sameAsHf: text === hf };
}

/**
 * renderPrompt without the tokenizing and without Hugging Face's render beside it (sameAsHf),
 * which would render the template once more: the text, and the ranges in it to encode with added
 * tokens not recognized (tokenizer.encode(text, { noSpecialIn: shielded }) gives the ids). The
 * server's form: it encodes long prompts on a thread of their own.
 */
export function renderPromptText(
  template: ChatTemplate,
  tokenizer: Tokenizer,
  messages: readonly InputMessage[],
  opts: PromptOptions = {},
): Pick<Prompt, 'text' | 'shielded'> {
  const { text, shielded } = renderParts(template, tokenizer, messages, opts, false);
  return { text, shielded };
}

/** The shielded render (and, with `withHf`, Hugging Face's plain one: `hf`). */
function renderParts(
  template: ChatTemplate,
  tokenizer: Tokenizer,
  messages: readonly InputMessage[],
  opts: PromptOptions,
  withHf: boolean,
): Pick<Prompt, 'text' | 'shielded'> & { hf?: string } {
  const continued = opts.continueFinalMessage === true;
  const last = messages.length - 1;
  if (continued && (last < 0 || messages[last].content === null || messages[last].content === undefined)) {
    throw badInput('continue_final_message needs a final message with content to continue');
  }
  const numbers = { found: false };
  const plain: ChatMessage[] = messages.map((m, i) => ({
    ...(stripMarkers(m, numbers) as InputMessage),
    content: flattenContent(stripMarkers(m.content, numbers) as InputMessage['content'], i),
  }));
  const specials = specialPattern(tokenizer);
  const marked = plain.map((m): ChatMessage => {
    if (SHIELDED_ROLES.has(m.role)) return m.content ? { ...m, content: OPEN + m.content + CLOSE } : m;
    if (m.role !== 'assistant' || !specials) return m;
    return shieldSpecials(m, specials) as ChatMessage;
  });
  // The tag goes after the shielded span, so the cut never splits the markers.
  const final = continued ? plain[last].content! : '';
  const tagged = (list: ChatMessage[]) => (continued ? list.map((m, i) => (i === last ? { ...m, content: m.content + CONTINUE_TAG } : m)) : list);
  const tools = opts.tools === undefined ? undefined : (stripMarkers(opts.tools, numbers) as ChatTool[]);
  const kwargs = opts.kwargs === undefined ? undefined : (stripMarkers(opts.kwargs, numbers) as Record<string, unknown>);
  const base: RenderOptions = { ...opts, addGenerationPrompt: opts.addGenerationPrompt ?? true, tools, kwargs, pythonNumbers: numbers.found };
  // Tool descriptions are shielded too when the template only prints them (tojson); a template
  // that compares them gets them plain. Content the template inspects stays shielded regardless.
  // Whether descriptions were only printed is judged against the render with plain descriptions,
  // not against Hugging Face's: shielded content the template inspects (a user message wrapped
  // in <tool_response>) already makes both differ from it.
  const rendered = (r: RenderOptions) => {
    const { text, shielded } = locateMarkers(template.render(tagged(marked), r));
    const cut = cutAtTag(text, final, continued);
    return { text: cut, shielded: shielded.filter(([start]) => start < cut.length).map(([start, end]): [number, number] => [start, Math.min(end, cut.length)]) };
  };
  let located = rendered(tools ? { ...base, tools: shieldDescriptions(tools) as ChatTool[] } : base);
  if (tools) {
    const plainDescriptions = rendered(base);
    if (plainDescriptions.text !== located.text) located = plainDescriptions;
  }
  const hf = withHf ? cutAtTag(template.render(tagged(plain), base), final, continued) : undefined;
  return { ...located, hf };
}

/** The render up to the continue tag, as transformers cuts it; the render itself when not continuing. */
function cutAtTag(rendered: string, final: string, continued: boolean): string {
  if (!continued) return rendered;
  const at = rendered.lastIndexOf(CONTINUE_TAG.trim());
  if (at < 0 || !rendered.includes(pythonStrip(final, null, true, true))) {
    throw badInput('continue_final_message needs a final message whose content the template keeps');
  }
  // A tag without its space: the template trimmed the content's end, so trim what precedes it too.
  return rendered.startsWith(CONTINUE_TAG, at) ? rendered.slice(0, at) : pythonStrip(rendered.slice(0, at), null, false, true);
}

const specialPatterns = new WeakMap<Tokenizer, RegExp | null>();

/** Matches any added token marked special (not <think> or <tool_call>, which are not); null if there are none. */
function specialPattern(tokenizer: Tokenizer): RegExp | null {
  let re = specialPatterns.get(tokenizer);
  if (re === undefined) {
    const texts = tokenizer.addedTokens.filter((t) => t.special && t.content.length > 0).map((t) => t.content);
    // Longest first, so a token that begins with another is matched whole.
    texts.sort((a, b) => b.length - a.length);
    re = texts.length > 0 ? new RegExp(texts.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g') : null;
    specialPatterns.set(tokenizer, re);
  }
  return re;
}

// The copies below keep each object's key order (util/key-order.ts): the template prints tools
// and call arguments with tojson, in the order the client wrote their keys.

/** Copy with every special token spelled in a string (or a key) wrapped in the markers. */
function shieldSpecials(value: unknown, re: RegExp): unknown {
  if (typeof value === 'string') return value.replace(re, (t) => OPEN + t + CLOSE);
  if (Array.isArray(value)) return value.map((v) => shieldSpecials(v, re));
  if (value !== null && typeof value === 'object' && !(value instanceof PythonNumber)) return objectInOrder(Object.entries(value).map(([k, v]) => [shieldSpecials(k, re) as string, shieldSpecials(v, re)]));
  return value;
}

/** Copy of the tools with every "description" string wrapped in the markers. */
function shieldDescriptions(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shieldDescriptions);
  if (value !== null && typeof value === 'object' && !(value instanceof PythonNumber))
    return objectInOrder(Object.entries(value).map(([k, v]) => [k, k === 'description' && typeof v === 'string' && v.length > 0 ? OPEN + v + CLOSE : shieldDescriptions(v)]));
  return value;
}

function flattenContent(content: InputMessage['content'], index: number): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw badInput(`messages[${index}].content must be a string or a list of text parts`);
  return content
    .map((part, j) => {
      if (part?.type !== 'text' || typeof part.text !== 'string') {
        throw badInput(`messages[${index}].content[${j}] is a ${String(part?.type)} part; this model takes text only`, 'send text parts only');
      }
      return part.text;
    })
    .join('\n');
}

/**
 * Deep copy with the marker characters removed from every string, and each number JSON.parse
 * changed from the request's text (still the value parsed from it) as a PythonNumber; sets
 * `numbers.found` when there was one.
 */
function stripMarkers(value: unknown, numbers: { found: boolean }): unknown {
  if (typeof value === 'string') return value.replace(MARKERS, '');
  if (value === null || typeof value !== 'object' || value instanceof PythonNumber) return value;
  const held = holdsWrittenNumbers(value);
  const member = (key: string, v: unknown): unknown => {
    const token = held && typeof v === 'number' ? writtenNumber(value, key) : undefined;
    if (token === undefined || !Object.is(Number(token), v)) return stripMarkers(v, numbers);
    numbers.found = true;
    return pythonNumber(token, v as number);
  };
  if (Array.isArray(value)) return value.map((v, i) => member(String(i), v));
  return objectInOrder(Object.entries(value).map(([k, v]) => [k.replace(MARKERS, ''), member(k, v)]));
}

/** Removes the markers; returns the text and the ranges they enclosed. An unclosed range runs to the end. */
function locateMarkers(rendered: string): { text: string; shielded: Array<[number, number]> } {
  const shielded: Array<[number, number]> = [];
  let text = '';
  let open = -1;
  let from = 0;
  for (let i = rendered.search(MARKERS); i >= 0; i = nextMarker(rendered, from)) {
    text += rendered.slice(from, i);
    from = i + 1;
    if (rendered[i] === OPEN) {
      if (open < 0) open = text.length;
    } else if (open >= 0) {
      if (text.length > open) shielded.push([open, text.length]);
      open = -1;
    }
  }
  text += rendered.slice(from);
  if (open >= 0 && text.length > open) shielded.push([open, text.length]);
  return { text, shielded };
}

function nextMarker(s: string, from: number): number {
  const a = s.indexOf(OPEN, from);
  const b = s.indexOf(CLOSE, from);
  return a < 0 ? b : b < 0 ? a : Math.min(a, b);
}
