// LoRA adapters served beside the base weights (vLLM's multi-LoRA serving, PEFT's format): each
// adapted projection adds scale * B (A x) to the base layer's output, per row, so one step can mix
// rows of the base model and of several adapters. Adapters are immutable once made and shared by
// the requests that use them (Request::lora), so unloading one never pulls it from under a
// running sequence.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "grpst/cpu_kernels.h"
#include "grpst/model_config.h"
#include "grpst/thread_pool.h"

namespace grpst {

/** The projections an adapter may adapt, in PEFT's module names' order. */
enum class LoraTarget : uint8_t { Q = 0, K, V, O, Gate, Up, Down };
inline constexpr int kLoraTargets = 7;
/** "q_proj", "k_proj", ... (PEFT's module names). */
const char* lora_target_name(LoraTarget t);

/**
 * One adapted projection: y += scale * B (A x). rank 0: not adapted. Held in bf16 (round to
 * nearest even), as the model's own weights and as vLLM casts adapters to the model's dtype: half
 * the bytes a step reads, and the bf16 GEMM kernels run them.
 */
struct LoraDelta {
  int rank = 0;
  float scale = 0.0f;         // lora_alpha / rank, or lora_alpha / sqrt(rank) with rsLoRA
  std::vector<uint16_t> a16;  // [rank, in_features]: A as given
  std::vector<uint16_t> b16;  // [out_features, rank]: B as given; make_lora_adapter moves it into bt16
  // What the runner reads of B: transposed in blocks of kLoraCols outputs, [out / kLoraCols][rank]
  // [kLoraCols] (the last block zero-padded): B (A x) is then `rank` updates along the outputs,
  // not `out` dot products of length `rank` (each ending in a horizontal sum, which a rank of 16
  // cannot pay for), and a block's B is one contiguous run, not `rank` strided ones (at rank 64,
  // more streams than a prefetcher follows).
  std::vector<uint16_t> bt16;
};

/** Outputs per block of LoraDelta::bt16. */
inline constexpr int kLoraCols = 64;

/** The shapes an adapter is made for; a model runs it only if its own match. */
struct LoraShape {
  int num_layers = 0, hidden = 0, intermediate = 0, q_dim = 0, kv_dim = 0;
  static LoraShape of(const ModelConfig& cfg);
  bool operator==(const LoraShape& o) const {
    return num_layers == o.num_layers && hidden == o.hidden && intermediate == o.intermediate && q_dim == o.q_dim &&
           kv_dim == o.kv_dim;
  }
  /** {in_features, out_features} of a target's projection. */
  std::array<int, 2> dims(LoraTarget t) const;
};

struct LoraAdapter {
  LoraShape shape;
  // Unique per adapter made in this process: folded into the root of its requests' prefix-cache
  // hash chains, since the same prompt under two adapters leaves different keys and values.
  uint64_t cache_key = 0;
  std::vector<std::array<LoraDelta, kLoraTargets>> layers;  // [num_layers][target]

  const LoraDelta* delta(int layer, LoraTarget t) const {
    const LoraDelta& d = layers[size_t(layer)][size_t(t)];
    return d.rank > 0 ? &d : nullptr;
  }
};

/**
 * Makes an adapter from its deltas, checking each one's sizes against `shape` (throws Error naming
 * the layer and projection otherwise). `deltas` is [num_layers][target]; rank 0 leaves one out.
 */
std::shared_ptr<const LoraAdapter> make_lora_adapter(const LoraShape& shape,
                                                     std::vector<std::array<LoraDelta, kLoraTargets>> deltas);

/** Scratch floats lora_add needs for `n_rows` rows of a projection [in -> out] at rank `rank`. */
inline size_t lora_scratch_floats(int n_rows, int rank, int in, int out) {
  return size_t(n_rows) * (size_t(in) + size_t(rank));
}

/**
 * y[rows[i], :out] += d.scale * B (A x[rows[i], :in]) for each listed row, as PEFT computes an
 * unmerged LoRA layer: A x first (fp32 accumulation), then B, then the scale, added to the base
 * layer's output. x: row stride ldx; y: ldy; scratch: lora_scratch_floats() floats. k: the level
 * whose bf16 GEMM and rank update run it; small updates (a decode step's) run on the calling thread,
 * where handing them to the pool would cost more than they do.
 */
void lora_add(const LoraDelta& d, const float* x, int64_t ldx, float* y, int64_t ldy, const int32_t* rows, int n_rows,
              int in, int out, float* scratch, const CpuKernels& k, ThreadPool& pool);

/** Combines a request's cache salt with its adapter into the root of its prefix-cache hash chain. */
uint64_t lora_cache_root(uint64_t cache_salt, const LoraAdapter* lora);

}  // namespace grpst
