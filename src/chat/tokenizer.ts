// Qwen2/Qwen3 tokenizer from a checkpoint's tokenizer.json, giving the same ids as Hugging Face
// tokenizers: added tokens split first (raw text), then NFC, the Split regex, byte-level BPE.
import { badInput } from '../util/errors.js';
import { AddedTokenMatcher, type AddedTokenJson, type ShieldedRanges } from './added-tokens.js';
import { BpeModel } from './bpe.js';
import { PreTokenizer } from './pre-tokenizer.js';
import { TokenTable } from './token-table.js';
import { postProcessorFromJson, type PostProcess } from './post-processor.js';
import {
  normalizerFromJson,
  readTokenizerConfig,
  readTokenizerJson,
  tokenContent,
  tokenizerStamp,
  type TokenizerConfigJson,
  type TokenizerSource,
  type TokenizerJson,
} from './tokenizer-files.js';

export interface EncodeOptions {
  /**
   * Recognize added tokens (<|im_start|>, <think>, ...) in the text, as Hugging Face does.
   * Default true. False: the whole text is plain text, every added token included.
   */
  allowSpecial?: boolean;
  /** Character ranges [start, end) of `text` (user content) in which no added token is recognized. */
  noSpecialIn?: ShieldedRanges;
}

export interface DecodeOptions {
  /** Leave out special tokens (special: true in tokenizer.json; <think> and <tool_call> are not special). */
  skipSpecialTokens?: boolean;
}

export class Tokenizer {
  /** Ids 0..vocabSize-1 have a token (BPE vocabulary and added tokens). */
  readonly vocabSize: number;
  /** Ids of added tokens marked special (<|endoftext|>, <|im_start|>, <|im_end|>, ...), ascending. */
  readonly specialTokenIds: readonly number[];
  /** Every added token (special or not), as tokenizer.json lists them. */
  readonly addedTokens: readonly AddedTokenJson[];
  /** Id of tokenizer_config.json's eos_token (<|im_end|> for Qwen3 instruct models). */
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  /** tokenizer_config.json as read (chat_template, special token names, ...). */
  readonly config: TokenizerConfigJson;

  private readonly model: BpeModel;
  private readonly preTokenizer: PreTokenizer;
  private readonly normalize: ((s: string) => string) | null;
  private readonly matcher: AddedTokenMatcher;
  private readonly vocab: Map<string, number>;
  private readonly added = new Map<string, number>();
  private readonly addedById = new Map<number, AddedTokenJson>();
  private readonly special: Uint8Array;
  private readonly table: TokenTable;
  private readonly postProcess: PostProcess;

  /** `source`: the folder read (fromDir), where a worker thread can read the same tokenizer again. */
  constructor(json: TokenizerJson, config: TokenizerConfigJson = {}, readonly source?: TokenizerSource) {
    const vocab = new Map<string, number>();
    // Object.keys + indexed loop: several times faster than Object.entries or for-in over a
    // 151k-key dictionary object, which matters for start-up time.
    const vocabJson = json.model.vocab;
    const keys = Object.keys(vocabJson);
    const bpeTokens: string[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const tok = keys[i];
      const id = vocabJson[tok];
      if (!Number.isInteger(id) || id < 0) throw badInput(`tokenizer.json: token ${JSON.stringify(tok)} has id ${id}`, 'copy tokenizer.json again from the checkpoint');
      vocab.set(tok, id);
      bpeTokens[id] = tok;
    }
    this.vocab = vocab;
    this.addedTokens = json.added_tokens ?? [];
    let size = bpeTokens.length;
    for (const t of this.addedTokens) {
      this.added.set(t.content, t.id);
      this.addedById.set(t.id, t);
      size = Math.max(size, t.id + 1);
    }
    this.vocabSize = size;
    this.special = new Uint8Array(size);
    for (const t of this.addedTokens) if (t.special) this.special[t.id] = 1;
    this.specialTokenIds = this.addedTokens.filter((t) => t.special).map((t) => t.id).sort((a, b) => a - b);

    this.model = new BpeModel(json.model, bpeTokens, vocab);
    this.preTokenizer = PreTokenizer.fromJson(json.pre_tokenizer);
    this.normalize = normalizerFromJson(json.normalizer);
    this.matcher = new AddedTokenMatcher(this.addedTokens);
    checkDecoder(json.decoder);
    this.postProcess = postProcessorFromJson(json.post_processor);
    this.table = new TokenTable(size, bpeTokens, new Map(this.addedTokens.map((t) => [t.id, t.content])));

    this.config = config;
    const idOf = (name: string, spec: TokenizerConfigJson['eos_token']) => {
      const content = tokenContent(spec);
      if (content === undefined) return undefined;
      const id = this.tokenToId(content);
      if (id === undefined) throw badInput(`tokenizer_config.json: ${name} ${JSON.stringify(content)} is not in tokenizer.json`, 'copy tokenizer.json and tokenizer_config.json from the same checkpoint');
      return id;
    };
    this.eosTokenId = idOf('eos_token', config.eos_token);
    this.padTokenId = idOf('pad_token', config.pad_token);
    this.bosTokenId = idOf('bos_token', config.bos_token);
  }

  /** Reads tokenizer.json (and tokenizer_config.json when present) from a checkpoint or engine folder. */
  static fromDir(dir: string): Tokenizer {
    const json = readTokenizerJson(dir);
    return new Tokenizer(json, readTokenizerConfig(dir), { dir, stamp: tokenizerStamp(dir) });
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    const segments = opts.allowSpecial === false ? [{ text }] : this.matcher.split(text, opts.noSpecialIn);
    for (const seg of segments) {
      if (seg.text === undefined) ids.push(seg.id);
      else this.encodePlain(seg.text, ids);
    }
    return ids;
  }

  /**
   * A text as Hugging Face's `tokenizer(text)` encodes it: with the post-processor's special
   * tokens (an embedding model's end token, for one). For inputs that are not chat prompts.
   */
  encodeWithSpecialTokens(text: string): number[] {
    return this.postProcess(this.encode(text));
  }

  private encodePlain(text: string, out: number[]): void {
    if (text.length === 0) return;
    const normalized = this.normalize ? this.normalize(text) : text;
    this.preTokenizer.forEachPiece(normalized, (piece) => this.model.encodePiece(piece, out));
  }

  /** Text of the ids as Hugging Face decodes it: bytes joined, invalid UTF-8 becomes U+FFFD; unknown ids are dropped. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    // ignoreBOM: a leading U+FEFF is text to Hugging Face, not a byte-order mark to drop.
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(this.table.concat(ids, opts.skipSpecialTokens ? this.special : null));
  }

  /** Token string of an id as Hugging Face shows it (byte-level alphabet, e.g. "Ġworld"), or undefined. */
  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.tokens[id];
  }

  tokenToId(token: string): number | undefined {
    return this.added.get(token) ?? this.vocab.get(token);
  }

  isSpecial(id: number): boolean {
    return this.special[id] === 1;
  }

  /** Raw bytes of one token (a view: do not modify). Empty for ids without a token. */
  tokenBytes(id: number): Uint8Array {
    return this.table.bytes(id);
  }

  /** Raw bytes of every token, indexed by id (views into one buffer: do not modify). */
  allTokenBytes(): readonly Uint8Array[] {
    return this.table.all();
  }

  /** All token bytes packed: token id's bytes are data[offsets[id] .. offsets[id + 1]). */
  packedTokenBytes(): { data: Uint8Array; offsets: Uint32Array } {
    return this.table.packed();
  }

  /** Table used by IncrementalDecoder; also tells which ids are special. */
  get tokenTable(): TokenTable {
    return this.table;
  }

  get specialMask(): Uint8Array {
    return this.special;
  }
}

function checkDecoder(decoder: TokenizerJson['decoder']): void {
  const steps = decoder?.type === 'Sequence' ? (decoder.decoders ?? []) : decoder ? [decoder] : [];
  if (steps.length !== 1 || steps[0].type !== 'ByteLevel') {
    throw badInput(`tokenizer.json: decoder ${JSON.stringify(decoder)} is not ByteLevel`, 'use a Qwen2/Qwen3 checkpoint (byte-level BPE)');
  }
}
