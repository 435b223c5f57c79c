// CPU twins of the CUDA kernels: plain C++ with the same rounding points (bf16 roundings where
// transformers rounds), sums in double. The parity tests compare each kernel with its twin.
#pragma once
#include <cstdint>
#include <vector>

#include "harness.h"

namespace ref {

using V16 = std::vector<uint16_t>;
using VF = std::vector<float>;
using grpst::cuda::Epilogue;
using grpst::cuda::KvDtype;
using grpst::cuda::WeightFormat;

void embedding(const std::vector<int32_t>& ids, const V16& table, int H, int V, V16& out);
void rmsnorm(const V16& x, const V16* residual, V16* residual_out, const VF& w, int M, int H, float eps, V16& y);
void swiglu(const V16& gate_up, int M, int I, V16& out);
// Calibration statistics: abs_max[c] = max(abs_max[c], |x[r,c]|), abs_sum[c] += |x[r,c]| over rows,
// in double (the kernel sums runs of 64 rows in fp32).
// AWQ's objective (native/src/addon/quant_tools.cpp awqLoss): delta = w - Q(w * s) / s per group of
// `group` columns (s empty: no scaling), and the sum over (t, o) of (x_t . delta_o)^2 in double.
void awq_delta(const VF& w, const VF& s, int rows, int K, int group, VF& delta);
double awq_sumsq(const VF& x, const VF& delta, int n, int rows, int K);
void column_abs_stats(const V16& x, int rows, int cols, int ld, VF& abs_max, std::vector<double>& abs_sum);
// The tensor-parallel all-reduce of bf16 buffers: the sum over ranks in rank order in fp32,
// rounded to bf16 once (the in-process group's sum, native/src/runtime/collective_local.cpp).
void all_reduce_sum(const std::vector<V16>& per_rank, V16& out);

// A paged cache in host memory with the device layout [num_blocks, nkv, block_size, hd].
struct KvHost {
  KvDtype dtype = KvDtype::bf16;
  int num_blocks = 0, block_size = 0, nkv = 0, hd = 0;
  float k_scale = 1.f, v_scale = 1.f;
  std::vector<uint8_t> k, v;  // raw bytes
  std::vector<float> kf, vf;  // dequantized copies (dequantize_all) used by attention_row
  int elem() const { return dtype == KvDtype::bf16 ? 2 : 1; }
  size_t index(int block, int h, int off, int d) const {
    return ((static_cast<size_t>(block) * nkv + h) * block_size + off) * hd + d;
  }
  float get(bool is_k, size_t i) const;
  void put(bool is_k, size_t i, float value);  // quantizes like the kernels
  void allocate();
  void dequantize_all();
};

void qk_norm_rope_kv(const V16& qkv, const std::vector<int32_t>& positions, const std::vector<int32_t>& slots,
                     const VF& q_norm_w, const VF& k_norm_w, float eps, const std::vector<float>& inv_freq,
                     float attention_scaling, int T, int nh, KvHost& kv, V16& q_out);

// out[nh*hd] for one query row attending keys [0, ctx) through one block-table row; needs
// kv.dequantize_all() first.
void attention_row(const uint16_t* q /*[nh*hd]*/, int nh, int ctx, const int32_t* block_table, const KvHost& kv,
                   float softmax_scale, float* out);

// Activation prologue as the kernels apply it: bf16-rounded floats [M,K].
VF linear_act(const V16& x, const VF* norm_w, float eps, const V16* act_scale, int M, int K);

// One row of K activations quantized in place as the fp8 / int8_sq kernels quantize theirs (the
// values the tensor cores multiply): fp8 e4m3(v / x_scale), returning x_scale; int8_sq by the row's
// amax / 127, rounded and clamped to +-127, returning amax / 127.
float quantize_act_row(float* v, int K, bool fp8, float x_scale);

// A quantized weight as the reference sees it (natural layouts).
struct HostWeight {
  WeightFormat format = WeightFormat::bf16;
  int N = 0, K = 0;
  V16 bf16;                      // bf16 [N,K]
  std::vector<int8_t> i8;        // int8_wo / int8_sq [N,K]
  std::vector<uint8_t> i4;       // int4 [N,K/2], low nibble first
  VF group_scale;                   // int4 [N, K/G] fp32 (the kernels use bf16(scale))
  std::vector<uint8_t> group_zero;  // int4 [N, K/G], 0..15; empty: 8
  int group_size = 0;
  std::vector<float> channel_scale;  // [N]
  std::vector<uint8_t> e4m3;     // fp8 [N,K]
  float w_scale = 1.f, x_scale = 1.f;
  // int4 as the streaming GEMV computes it: each group's sum finished in fp32,
  // s * sum (q - z) x, instead of the tensor cores multiplying bf16((q - z) * s).
  bool int4_fp32_groups = false;
  float weight(int n, int k) const;  // dequantized value the kernels multiply with
};

// y[M,N] (or [M,N/2] for SwiGLU): y holds bf16 values as floats, fp32 when f32_out; for the
// residual epilogue y is read and updated.
void linear(const V16& x, const VF* norm_w, float eps, const V16* act_scale, const HostWeight& w, Epilogue epi,
            bool f32_out, int M, VF& y);

// One LoRA-adapted projection in natural layouts: A [rank, in], B [out, rank], both bf16.
struct LoraProjHost {
  int rank = 0;
  float scale = 0.f;
  V16 a, b;
};
// lora_add's twin (and the CPU runner's grpst::lora_add): for each row m and target i with a
// projection (proj[m][i] not null), y[m, offset[i] + j * stride] = bf16(y + scale * sum_r t_r
// B[j, r]) with t = A x_m rounded to fp32, as the kernel keeps it; sums in double. y is [M, ldy].
void lora_add(const V16& x, int in, const std::vector<std::vector<const LoraProjHost*>>& proj, const int* out,
              const int* offset, int stride, int ldy, V16& y);

}  // namespace ref
