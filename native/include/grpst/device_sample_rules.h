// What the device sampler and its CPU twin share, compiled by both g++ and nvcc so the two
// cannot drift: the seeded noise of a draw, the layout of a row's logit edits, and the lookups
// that turn a row's edits and allowed-token mask into the logit a token starts from.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define GRPST_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define GRPST_HOST_DEVICE inline
#endif

namespace grpst {

/**
 * One token's change before penalties: its logit plus `delta` (a logit bias), or banned (delta
 * -inf: a bad word, a stop token held back by min_tokens). A row's edits are sorted by token, one
 * entry per token.
 */
struct LogitEdit {
  int32_t token;
  float delta;
};

GRPST_HOST_DEVICE uint64_t sample_mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/** Uniform in (0, 1) from (seed, step, token): a Gumbel-max draw's noise for that token. */
GRPST_HOST_DEVICE float sample_uniform(uint64_t seed, uint64_t step, int token) {
  const uint64_t h = sample_mix64(sample_mix64(seed ^ sample_mix64(step)) + static_cast<uint64_t>(token));
  return (static_cast<float>(h >> 40) + 0.5f) * (1.f / 16777216.f);
}

/** Whether `token` is allowed by a [ceil(vocab / 32)]-word mask (bit t % 32 of word t / 32); null allows all. */
GRPST_HOST_DEVICE bool sample_allowed(const uint32_t* mask, int token) {
  return mask == nullptr || ((mask[token >> 5] >> (token & 31)) & 1u) != 0;
}

/** The delta of `token` in a row's sorted edits [count] (0 where it has none), by bisection. */
GRPST_HOST_DEVICE float sample_edit_delta(const LogitEdit* edits, int count, int token) {
  int lo = 0, hi = count;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (edits[mid].token < token) lo = mid + 1;
    else hi = mid;
  }
  return lo < count && edits[lo].token == token ? edits[lo].delta : 0.f;
}

}  // namespace grpst
