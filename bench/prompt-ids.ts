// Prompts for the in-process benchmarks: token ids without a tokenizer, so that timings do not
// depend on text. Ids stay in the ordinary-text range of the Qwen3 vocabulary (no special tokens).

/** Deterministic token ids, different for every `salt`. */
export function promptIds(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + salt * 104729) % 100000));
}
