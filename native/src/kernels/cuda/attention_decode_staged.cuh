// The staged decode-attention kernel's launcher, shared by attention_decode() (q ready in a
// buffer) and attention_decode_fused() (q/k norm + RoPE + the KV write done inside).
#pragma once
#include "kernels.h"

namespace grpst::cuda {

// Split partials are merged by the last block of each (row, kv head), found with a counter per
// pair at the start of the workspace: the counters start at zero (the workspace is zeroed once
// when allocated) and the merging block puts its counter back to zero.
constexpr int kDecodeCounters = 4096;

// The split-K workspace of every decode attention kernel (attention_decode_workspace() floats):
// [kDecodeCounters merge counters][partial o: R, nh, splits, hd][partial lse: R, nh, splits].
struct SplitWorkspace {
  int* counters = nullptr;
  float* o = nullptr;
  float* lse = nullptr;
};
inline SplitWorkspace split_workspace(float* workspace, int R, int nh, int num_splits, int head_dim) {
  if (!workspace) return {};
  float* o = workspace + kDecodeCounters;
  return {reinterpret_cast<int*>(workspace), o, o + static_cast<size_t>(R) * nh * num_splits * head_dim};
}

struct DecodeArgs {
  const bf16* q = nullptr;  // [R, nh, hd]; fused: the qkv rows [R, (nh + 2 nkv) hd]
  const int32_t* ctx_lens = nullptr;  // fused: the positions (ctx = position + 1)
  int ctx_add = 0;
  const int32_t* seq_of_row = nullptr;
  PagedTables tables{};
  KvLayer kv{};
  float scale_log2 = 1.f;
  float* ws_o = nullptr;
  float* ws_lse = nullptr;
  int* counters = nullptr;
  bf16* out = nullptr;
  // fused only
  const int32_t* slots = nullptr;
  const float* q_norm_w = nullptr;
  const float* k_norm_w = nullptr;
  float eps = 1e-6f;
  Rope rope{};
};

// Whether the staged kernel handles this cache geometry (16-byte rows of K and V per token).
bool attention_decode_staged_supported(const KvGeometry& geo, int nh, int R, int num_splits);
Status attention_decode_staged(const DecodeArgs& a, const KvGeometry& geo, int R, int nh, int num_splits,
                               bool fused, const Exec& ex);

}  // namespace grpst::cuda
