// end_token_id / pad_token_id of the inference conf must name tokens of the served tokenizer: an
// id past its vocabulary is never generated, so a conf relying on it would never stop there.
import { badInput } from '../util/errors.js';

export function checkTokenIds(ids: { endTokenId?: number; padTokenId?: number; skipTokenIds?: number[] }, vocabSize: number, conf: string): void {
  const named: [string, number | undefined, string][] = [
    ['end_token_id', ids.endTokenId, '151645, "<|im_end|>"'],
    ['pad_token_id', ids.padTokenId, '151643, "<|endoftext|>"'],
  ];
  for (const [key, id, qwen3] of named) {
    if (id === undefined || id < vocabSize) continue;
    throw badInput(
      `${conf}: ${key} ${id} is outside the tokenizer's vocabulary (ids 0 to ${vocabSize - 1})`,
      `set ${key} to a token id of the model (Qwen3: ${qwen3}), or remove it`,
    );
  }
  const outside = (ids.skipTokenIds ?? []).filter((id) => id >= vocabSize);
  if (outside.length > 0) {
    throw badInput(
      `${conf}: skip_special_tokens lists ${outside.join(', ')}, outside the tokenizer's vocabulary (ids 0 to ${vocabSize - 1})`,
      'list token ids of the model (Qwen3: 151643 to 151668), or write skip_special_tokens: true',
    );
  }
}
