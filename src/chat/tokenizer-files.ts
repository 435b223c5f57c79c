// Reading a checkpoint's tokenizer.json and tokenizer_config.json, with errors that name the
// file and the fix.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { badInput, unreadableFile } from '../util/errors.js';
import type { AddedTokenJson } from './added-tokens.js';
import type { BpeModelJson } from './bpe.js';
import type { PreTokenizerJson } from './pre-tokenizer.js';
import { normalizeLikeTokenizers } from './unicode-compat.js';
import type { PostProcessorJson } from './post-processor.js';

export interface NormalizerJson {
  type: string;
  normalizers?: NormalizerJson[];
}

export interface TokenizerJson {
  added_tokens?: AddedTokenJson[];
  normalizer?: NormalizerJson | null;
  pre_tokenizer?: PreTokenizerJson | null;
  decoder?: { type: string; decoders?: { type: string }[] } | null;
  post_processor?: PostProcessorJson | null;
  model: BpeModelJson;
}

/** A token named in tokenizer_config.json: a string or an AddedToken object. */
export type TokenSpec = string | { content: string } | null | undefined;

export interface TokenizerConfigJson {
  eos_token?: TokenSpec;
  pad_token?: TokenSpec;
  bos_token?: TokenSpec;
  unk_token?: TokenSpec;
  chat_template?: string | Array<{ name: string; template: string }>;
  [key: string]: unknown;
}

export function tokenContent(spec: TokenSpec): string | undefined {
  if (spec === null || spec === undefined) return undefined;
  return typeof spec === 'string' ? spec : spec.content;
}

function readJsonFile<T>(file: string, what: string): T {
  if (!existsSync(file)) {
    throw badInput(`${file} is missing`, `copy ${what} from the Hugging Face checkpoint into ${join(file, '..')}`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw unreadableFile(e, file) ?? e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw badInput(`${file} is not valid JSON: ${(e as Error).message}`, `copy ${what} again from the Hugging Face checkpoint`);
  }
}

export function readTokenizerJson(dir: string): TokenizerJson {
  const file = join(dir, 'tokenizer.json');
  const json = readJsonFile<TokenizerJson>(file, 'tokenizer.json');
  if (!json || typeof json !== 'object' || !json.model || typeof json.model !== 'object') {
    throw badInput(`${file} has no "model" section`, 'copy tokenizer.json again from the Hugging Face checkpoint');
  }
  if (json.model.type !== 'BPE' || typeof json.model.vocab !== 'object' || !Array.isArray(json.model.merges)) {
    throw badInput(`${file}: model type ${json.model.type} is not a BPE model with vocab and merges`, 'use a Qwen2/Qwen3 checkpoint (byte-level BPE)');
  }
  return json;
}

/** Where a tokenizer was read from, and tokenizer.json's size and time as it was then: what encoding depends on. */
export interface TokenizerSource {
  dir: string;
  stamp: string;
}

export function tokenizerStamp(dir: string): string {
  const st = statSync(join(dir, 'tokenizer.json'));
  return `${st.size}:${st.mtimeMs}`;
}

/** tokenizer_config.json, or an empty config when the folder has none. */
export function readTokenizerConfig(dir: string): TokenizerConfigJson {
  const file = join(dir, 'tokenizer_config.json');
  if (!existsSync(file)) return {};
  return readJsonFile<TokenizerConfigJson>(file, 'tokenizer_config.json');
}

/** Unicode normalization of the tokenizer (tokenizers' NFC/NFD/NFKC/NFKD, optionally in a Sequence). */
export function normalizerFromJson(json: NormalizerJson | null | undefined): ((s: string) => string) | null {
  if (!json) return null;
  const steps = json.type === 'Sequence' ? (json.normalizers ?? []) : [json];
  const forms = steps.map((s) => {
    if (s.type === 'NFC' || s.type === 'NFD' || s.type === 'NFKC' || s.type === 'NFKD') return s.type;
    throw badInput(`tokenizer.json: normalizer ${s.type} is not supported`, 'use a Qwen2/Qwen3 checkpoint, whose tokenizer.json grpst supports');
  });
  if (forms.length === 0) return null;
  return (s) => forms.reduce((acc, f) => normalizeLikeTokenizers(acc, f), s);
}
