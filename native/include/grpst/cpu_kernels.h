// The CPU kernels as a table of function pointers, one table per instruction-set level
// (AMX: AVX-512 with its bf16 GEMM on AMX tiles; AVX-512, AVX2+FMA, scalar), chosen at run time.
// Kernels never throw, and never allocate but for the amx level's plain gemm_bf16, which packs
// its activations into a per-thread buffer (linears pack them through pack_bf16 instead).
// Each output element is computed by the same instruction sequence whatever the batch shape
// (rows M, the thread split, the other sequences in a step), so results are batch-invariant.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace grpst {

enum class CpuLevel { Scalar = 0, Avx2 = 1, Avx512 = 2, Amx = 3 };

/** Element type of a KV pool: fp32, bf16, or 1-byte e4m3 / int8 codes read as value * scale. */
enum class KvElem : uint8_t { F32, BF16, FP8, INT8 };

/**
 * Query rows at consecutive positions of one sequence against one KV head of a paged cache, for
 * the G query heads that share it. Row r attends to positions [0, ctx_len + r). Within a block,
 * a head's keys are stored transposed, [head_dim][block_size], and its values as
 * [block_size][head_dim].
 */
struct AttentionArgs {
  const float* q;              // row r, head g: q[r * row_stride + g * head_dim + d]
  int group;
  int head_dim;
  int rows = 1;
  int64_t row_stride = 0;      // elements between consecutive rows of q and of out
  const void* k_pool;          // this layer's key pool (elements of kv_elem)
  const void* v_pool;          // this layer's value pool
  KvElem kv_elem = KvElem::F32;
  float k_scale = 1.0f;        // fp8 / int8: key = code * k_scale (1 for float pools)
  float v_scale = 1.0f;        // fp8 / int8: value = code * v_scale
  int64_t block_stride;        // elements from one block to the next
  int64_t head_offset;         // elements from a block's start to this KV head's data
  int block_size;
  const int32_t* block_table;  // pool block of each logical block
  int ctx_len;                 // the first row attends to positions [0, ctx_len)
  float scale;
  float* out;                  // like q
  float* scratch;              // attention_scratch_floats(ctx_len + rows - 1) floats
};

/** Scratch floats one attention call needs for contexts up to max_ctx keys. */
// (a pass's key-tile scores, up to 4 rows x 8 heads x 128 keys, then a running max and sum per row
// and head: max_ctx bounds the rows)
inline size_t attention_scratch_floats(int max_ctx) { return size_t(4 * 8 * 128) + size_t(16) * size_t(max_ctx > 0 ? max_ctx : 1); }

struct CpuKernels {
  CpuLevel level;
  const char* name;
  /** y[m, n] = sum_k x[m, k] * w[n, k] for m < M and n0 <= n < n1; w is bf16 [N, K] (ldw per row). */
  void (*gemm_bf16)(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int M, int n0,
                    int n1, int K);
  /** y = w * (x / sqrt(mean(x^2) + eps)), as transformers' RMSNorm in fp32. */
  void (*rmsnorm)(const float* x, const float* w, float* y, int n, float eps);
  void (*attention)(const AttentionArgs& a);
  /** out = silu(gate) * up. */
  void (*silu_mul)(const float* gate, const float* up, float* out, int n);
  /** x += y. */
  void (*add)(float* x, const float* y, int n);
  /**
   * y[j] += scale * sum_r t[r] * bt[r * ldb + j] for j < n, bt in bf16: LoRA's B (A x) for one row
   * (t = A x, bt = B transposed), summed over r in order, then scaled and added to y.
   */
  void (*rank_update_bf16)(const float* t, int R, const uint16_t* bt, int64_t ldb, int n, float scale, float* y);
  void (*bf16_to_f32)(const uint16_t* src, float* dst, int n);
  void (*f32_to_bf16)(const float* src, uint16_t* dst, int n);
  /** max_i x[i] and sum_i exp(x[i] - max) over a logits row (for log-softmax). */
  void (*max_and_sum_exp)(const float* x, int n, float* max_out, double* sum_out);
  /** The lowest index of the largest entry of a logits row, NaN and -inf never chosen; -1 when none is left (greedy). */
  int (*argmax)(const float* x, int n);
  /** Reads `bytes` (multiple of 256, 64-byte aligned) and returns a value that depends on them. */
  float (*stream_read)(const void* p, size_t bytes);
  /**
   * Optional (nullptr where the level has none: all but amx): gemm_bf16 in two halves, so that a
   * linear call packs its activations once for every column range its threads take.
   * pack_bf16 writes pack_bf16_bytes(M, K) bytes to a 64-byte-aligned `out`; gemm_bf16_packed
   * gives gemm_bf16's y (the same bits) from them.
   */
  size_t (*pack_bf16_bytes)(int M, int K);
  void (*pack_bf16)(const float* x, int64_t ldx, int M, int K, void* out);
  void (*gemm_bf16_packed)(const void* packed, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int M, int n0,
                           int n1, int K);
};

/** Whether this CPU (and OS) can run the level. */
bool cpu_supports(CpuLevel level);
/** Levels this CPU runs, best first. */
std::vector<CpuLevel> cpu_levels_available();
const CpuKernels& cpu_kernels(CpuLevel level);
const char* cpu_level_name(CpuLevel level);
/** "amx", "avx512", "avx2" or "scalar"; throws Error on anything else. */
CpuLevel parse_cpu_level(const std::string& name);
/**
 * The level to use: the best the CPU runs, or `requested` ("" = best; else at most what the CPU
 * runs, so forcing avx512 on an AVX2 machine is an error). GRPST_CPU_KERNELS is read by callers.
 */
CpuLevel choose_cpu_level(const std::string& requested);

}  // namespace grpst
