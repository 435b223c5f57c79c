// Streaming detokenization for one request. Token bytes go through one streaming UTF-8
// decoder, so a character whose bytes span several tokens (CJK, emoji) comes out whole once its
// last byte arrives, and invalid bytes become U+FFFD exactly where a one-shot decode of all the
// ids puts them. Each push costs O(bytes of the new tokens).
import type { Tokenizer } from './tokenizer.js';

export interface IncrementalDecoderOptions {
  /** Leave out special tokens (<|im_end|>, ...); <think> and <tool_call> are not special and stay. */
  skipSpecialTokens?: boolean;
  /** Which ids skipSpecialTokens leaves out (1 = skip), when not the tokenizer's special ones: the conf's skip_special_tokens list. */
  skipMask?: Uint8Array;
}

/** A mask of these ids for skipMask. */
export function tokenMask(size: number, ids: readonly number[]): Uint8Array {
  const mask = new Uint8Array(size);
  for (const id of ids) if (id >= 0 && id < size) mask[id] = 1;
  return mask;
}

export class IncrementalDecoder {
  private utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private readonly skip: Uint8Array | null;

  constructor(
    private readonly tokenizer: Tokenizer,
    opts: IncrementalDecoderOptions = {},
  ) {
    this.skip = opts.skipSpecialTokens ? (opts.skipMask ?? tokenizer.specialMask) : null;
  }

  /** Text completed by these ids; bytes of a character still incomplete are held back. */
  push(ids: ArrayLike<number>): string {
    if (ids.length === 0) return '';
    return this.utf8.decode(this.tokenizer.tokenTable.concat(ids, this.skip), { stream: true });
  }

  /** Ends the stream: held-back bytes of an unfinished character come out as U+FFFD, as a full decode gives. */
  flush(): string {
    return this.utf8.decode();
  }
}
