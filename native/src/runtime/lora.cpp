// LoRA adapters: their checks at load and the per-row update of an adapted projection.
#include "grpst/lora.h"

#include <algorithm>
#include <atomic>
#include <string>

#include "grpst/common.h"

namespace grpst {

const char* lora_target_name(LoraTarget t) {
  static const char* names[kLoraTargets] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return names[size_t(t)];
}

LoraShape LoraShape::of(const ModelConfig& cfg) {
  return {cfg.num_layers, cfg.hidden_size, cfg.intermediate_size, cfg.q_dim(), cfg.kv_dim()};
}

std::array<int, 2> LoraShape::dims(LoraTarget t) const {
  switch (t) {
    case LoraTarget::Q: return {hidden, q_dim};
    case LoraTarget::K:
    case LoraTarget::V: return {hidden, kv_dim};
    case LoraTarget::O: return {q_dim, hidden};
    case LoraTarget::Gate:
    case LoraTarget::Up: return {hidden, intermediate};
    case LoraTarget::Down: return {intermediate, hidden};
  }
  return {0, 0};
}

std::shared_ptr<const LoraAdapter> make_lora_adapter(const LoraShape& shape,
                                                     std::vector<std::array<LoraDelta, kLoraTargets>> deltas) {
  static std::atomic<uint64_t> next_key{1};
  if (shape.num_layers <= 0 || int(deltas.size()) != shape.num_layers)
    throw Error("LoRA adapter: " + std::to_string(deltas.size()) + " layers given for a model of " +
                std::to_string(shape.num_layers));
  for (int l = 0; l < shape.num_layers; l++) {
    for (int t = 0; t < kLoraTargets; t++) {
      const LoraDelta& d = deltas[size_t(l)][size_t(t)];
      if (d.rank == 0) continue;
      const auto [in, out] = shape.dims(LoraTarget(t));
      const std::string where = "LoRA adapter: layer " + std::to_string(l) + " " + lora_target_name(LoraTarget(t));
      if (d.rank < 0) throw Error(where + ": negative rank");
      if (d.a16.size() != size_t(d.rank) * in)
        throw Error(where + ": lora_A holds " + std::to_string(d.a16.size()) + " values, expected rank " +
                    std::to_string(d.rank) + " x " + std::to_string(in));
      if (d.b16.size() != size_t(out) * d.rank)
        throw Error(where + ": lora_B holds " + std::to_string(d.b16.size()) + " values, expected " + std::to_string(out) +
                    " x rank " + std::to_string(d.rank));
    }
  }
  for (auto& layer : deltas) {
    for (LoraDelta& d : layer) {
      if (d.rank == 0) continue;
      const size_t out = d.b16.size() / size_t(d.rank), R = size_t(d.rank), C = kLoraCols;
      d.bt16.assign((out + C - 1) / C * R * C, 0);
      for (size_t n = 0; n < out; n++)
        for (size_t r = 0; r < R; r++) d.bt16[n / C * R * C + r * C + n % C] = d.b16[n * R + r];
      std::vector<uint16_t>().swap(d.b16);
    }
  }
  auto a = std::make_shared<LoraAdapter>();
  a->shape = shape;
  a->cache_key = next_key.fetch_add(1);
  a->layers = std::move(deltas);
  return a;
}

void lora_add(const LoraDelta& d, const float* x, int64_t ldx, float* y, int64_t ldy, const int32_t* rows, int n_rows,
              int in, int out, float* scratch, const CpuKernels& k, ThreadPool& pool) {
  const int R = d.rank;
  float* xg = scratch;                          // [n_rows, in]: the rows of x, gathered
  float* t = xg + size_t(n_rows) * in;          // [n_rows, R]: A x
  // Below this many multiply-adds a pass runs on this thread: a decode step's update is a few
  // microseconds of work, less than waking the pool costs (14 passes a layer).
  constexpr int64_t kInline = int64_t(1) << 16;
  const bool inline_a = int64_t(n_rows) * R * in < kInline, inline_b = int64_t(n_rows) * R * out < kInline;
  for (int i = 0; i < n_rows; i++) std::copy_n(x + int64_t(rows[i]) * ldx, in, xg + size_t(i) * in);
  // A x: a bf16 GEMM [n_rows, in] x [R, in]^T, by blocks of rows and of ranks (a decode step's
  // one row still spreads over the threads: A is most of what the update reads).
  constexpr int kRowBlock = 16, kRankBlock = 8;
  const int row_blocks = (n_rows + kRowBlock - 1) / kRowBlock, rank_blocks = (R + kRankBlock - 1) / kRankBlock;
  auto a_block = [&](int task, int) {
    const int m0 = task / rank_blocks * kRowBlock, m = std::min(n_rows, m0 + kRowBlock) - m0;
    const int r0 = task % rank_blocks * kRankBlock, r1 = std::min(R, r0 + kRankBlock);
    k.gemm_bf16(xg + size_t(m0) * in, in, d.a16.data(), in, t + size_t(m0) * R, R, m, r0, r1, in);
  };
  if (inline_a) for (int b = 0; b < row_blocks * rank_blocks; b++) a_block(b, 0);
  else pool.parallel_for(row_blocks * rank_blocks, [&](int b, int th) { a_block(b, th); });
  // B (A x) = sum_r (A x)[r] * Bt[r, :], by blocks of kLoraCols outputs (a block's B stays in
  // cache for every row of x); then scale * it added to y, as PEFT adds the whole update.
  const int chunks = (out + kLoraCols - 1) / kLoraCols;
  auto b_chunk = [&](int c, int) {
    const int n0 = c * kLoraCols, len = std::min(out, n0 + kLoraCols) - n0;
    const uint16_t* block = d.bt16.data() + size_t(c) * R * kLoraCols;
    for (int i = 0; i < n_rows; i++) k.rank_update_bf16(t + size_t(i) * R, R, block, kLoraCols, len, d.scale, y + int64_t(rows[i]) * ldy + n0);
  };
  if (inline_b) for (int c = 0; c < chunks; c++) b_chunk(c, 0);
  else pool.parallel_for(chunks, [&](int c, int th) { b_chunk(c, th); });
}

uint64_t lora_cache_root(uint64_t cache_salt, const LoraAdapter* lora) {
  if (lora == nullptr) return cache_salt;
  // splitmix64's finaliser over (salt, key): never the bare salt, and distinct keys stay distinct.
  uint64_t h = cache_salt ^ (lora->cache_key * 0x9e3779b97f4a7c15ull);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}

}  // namespace grpst
