// A paged KV cache for the attention parity tests: the host copy (ref::KvHost) that the CPU twins
// read, and the same bytes and block tables on the device.
#pragma once
#include <vector>

#include "harness.h"
#include "reference.h"

namespace harness {

struct PagedSetup {
  ref::KvHost kv;
  std::vector<int32_t> tables;  // [S, max_blocks]
  int max_blocks = 0;
  Dev<uint8_t> dk, dv;
  Dev<int32_t> dtables;
};

// S sequences of the given lengths in a cache of random values whose blocks are handed out in
// random order.
void make_paged(PagedSetup& p, const std::vector<int>& lens, int nkv, int hd, int bs, grpst::cuda::KvDtype dtype,
                Rng& r);

const char* kv_name(grpst::cuda::KvDtype d);

// Random q_norm / k_norm weights around 1 ([hd] each), or none (empty) without norms.
void random_qk_norms(Rng& r, int hd, bool norms, ref::VF& qn, ref::VF& kn);
// Qwen3's RoPE inverse frequencies (theta 1e6): [hd / 2].
std::vector<float> rope_inv_freq(int hd);

// One new token per sequence of `p` as decode rows (row i: sequence R - 1 - i, at its last
// position, so rows map to sequences out of order), the QKV rows that hold them, and the norm
// weights and RoPE frequencies that make them attention inputs.
struct DecodeRows {
  std::vector<int32_t> pos, slots, seq;
  std::vector<uint16_t> qkv;  // [R, (nh + 2 nkv) * hd] bf16
  ref::VF qn, kn;             // empty: no norm weights
  std::vector<float> inv;     // [hd / 2]
};
DecodeRows make_decode_rows(const PagedSetup& p, const std::vector<int>& lens, int nh, int nkv, int hd, int bs,
                            bool norms, Rng& r);

}  // namespace harness
