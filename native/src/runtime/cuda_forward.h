// Qwen3's forward pass on the GPU over device tensors: embedding, per layer (fused QKV with the
// input RMSNorm, q/k norm + RoPE + KV write, paged attention for decode rows and prefill chunks,
// O with the residual add, gate_up with the post-attention norm and SwiGLU, down with the
// residual add; in Qwen3-MoE's sparse layers the routed experts instead, cuda_forward_moe.cu), then
// the final norm and the LM head for the rows that need logits.
// Small batches run weight-streaming kernels; large ones cuBLASLt. In models with quantized layers
// decode rows take their q/k norm + RoPE + KV write inside the attention kernel. Nothing in run()
// synchronizes with the host, so a decode step can be captured in a CUDA graph.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../kernels/cuda/kernels.h"
#include "../kernels/cuda/lora.h"
#include "../kernels/cuda/moe.h"

namespace grpst::cuda {

class TensorParallelHooks;  // runtime/cuda_tp.h

// Qwen3-MoE's sparse layers (experts 0: a dense model).
struct MoeDims {
  int experts = 0, top_k = 0, intermediate = 0;  // intermediate: each expert's (moe_intermediate_size)
  bool norm_topk = false;
};

struct ModelDims {
  int hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  float eps = 1e-6f;
  MoeDims moe;
};

// A sparse layer's router (bf16) and experts (bf16, int8_wo, int4_awq, fp8 or int8_sq), each
// expert's matrices stacked: expert e's gate_up starts at element e * 2 Im * H of gate_up (rows
// interleaved as the dense gate_up), its down at element e * H * Im of down; int8_wo adds one fp32
// scale per weight row, stacked and interleaved the same way; int4_awq's are in `int4`
// (MoeInt4Experts), fp8's and int8_sq's in `w8a8` (MoeW8A8Experts). Null in dense layers.
struct MoeWeights {
  WeightFormat format = WeightFormat::bf16;  // the experts': bf16, int8_wo, int4_awq, fp8 or int8_sq
  const bf16* router = nullptr;              // [E, H]
  const void* gate_up = nullptr;             // [E, 2 Im, H] of `format` (bf16, int8_wo)
  const void* down = nullptr;                // [E, H, Im] of `format` (bf16, int8_wo)
  const float* gate_up_scale = nullptr;      // [E, 2 Im] int8_wo
  const float* down_scale = nullptr;         // [E, H] int8_wo
  MoeInt4Experts int4;                       // int4_awq (kernels/cuda/moe.h)
  MoeW8A8Experts w8a8;                       // fp8, int8_sq (kernels/cuda/moe.h)
  bool on() const { return router != nullptr; }
};

struct LayerWeights {
  const float* input_norm = nullptr;  // [H] (norm weights stay fp32, as engines store them)
  const float* post_norm = nullptr;   // [H]
  const float* q_norm = nullptr;      // [hd] or null
  const float* k_norm = nullptr;      // [hd] or null
  Weight qkv;                        // [(nh + 2 nkv) hd, H]: q rows, k rows, v rows
  Weight o;                          // [H, nh hd]
  Weight gate_up;                    // [2I, H]: rows interleaved gate_0, up_0, gate_1, ... (dense layers)
  Weight down;                       // [H, I] (dense layers)
  MoeWeights moe;                    // sparse layers: the experts in place of gate_up / down
  // Per-input-channel activation scales (AWQ pre-quant scale, SmoothQuant) or null.
  const bf16* qkv_act_scale = nullptr;
  const bf16* o_act_scale = nullptr;
  const bf16* gate_up_act_scale = nullptr;
  const bf16* down_act_scale = nullptr;
};

struct ModelWeights {
  const bf16* embed = nullptr;       // [V, H]
  const float* final_norm = nullptr;  // [H]
  Weight lm_head;                    // [V, H] (the embedding when tied)
  std::vector<LayerWeights> layers;
  const float* inv_freq = nullptr;   // [hd/2], device
  float attention_scaling = 1.f;
};

struct KvCache {
  KvGeometry geo;
  std::vector<KvLayer> layers;
};

// One step's batch; every pointer is device memory. Rows [0, num_decode) are decode tokens (one
// per sequence); rows [num_decode, num_tokens) are prefill chunks described by `prefill`
// (q_start counted from row 0 of the whole batch).
struct StepInput {
  int num_tokens = 0;
  int num_decode = 0;
  const int32_t* tokens = nullptr;     // [T]
  const int32_t* positions = nullptr;  // [T]
  const int32_t* slots = nullptr;      // [T] cache slot written by each token
  const int32_t* token_seq = nullptr;  // [T] block-table row of each token
  PrefillBatch prefill;                // num_seqs = 0 when there is no prefill
  PagedTables tables;
  int num_logits = 0;                  // L
  const int32_t* logit_rows = nullptr; // [L] rows that need logits; null: all T rows, in order
  int max_context = 0;                 // host hint: longest context in the batch (split-K choice)
  LoraStep lora;                       // rows with LoRA adapters (lora.rows null: none this step)
};

struct ForwardLimits {
  int max_tokens = 8192;     // rows per step
  int max_logits = 256;      // rows of logits per step
  int max_decode_splits = 64;
};

// Rows up to which bf16 weights take the GEMV rather than cuBLASLt: on an H200 the Qwen3-8B
// decode step at 2 / 4 rows took 5.22 / 5.34 ms through cuBLASLt (timed algorithms) against
// 5.68 / 8.09 ms through the GEMV, which stays ahead at one row (docs/benchmarks-gpu.md).
constexpr int kDefaultGemvMaxRows = 1;
// Decode rows up to which bf16 weights take the weight-streaming GEMV (set_bf16_stream_max_rows),
// cuBLASLt beyond (and for shapes whose activations the GEMV's shared memory does not hold:
// down_proj from 4 rows). On an H200, decode steps at 512 keys in turns (after table run 33,
// docs/benchmarks-gpu.md): GEMV against cuBLASLt b2 4.573 / 4.814 ms, b4 4.784 / 4.887,
// b5 4.946 / 4.873, b6 5.111 / 4.952, b7 5.415 / 4.962, b8 5.128 / 5.033 (4.993 with 16 rows'
// algorithm, which cuBLASLt GEMMs of fewer rows take: gemm_lt.cu).
constexpr int kDefaultBf16StreamMaxRows = 4;
// bf16 weights at kDefaultBf16WsMinRows-kDefaultBf16WsMaxRows rows through the warp-specialized
// wgmma GEMM (linear_bf16_ws.cu) where it runs, cuBLASLt beyond (GRPST_CUDA_BF16_WS_MIN_ROWS /
// _MAX_ROWS; min 0: never, as GRPST_CUDA_BF16_WS=0). Decode steps on an H100 in turns against
// cuBLASLt (docs/benchmarks-gpu.md, "bf16 decode batches on wgmma"), ms at 512 keys, with the K
// slices' sums spread over each tile's blocks: b8 6.788 -> 6.403, b16 7.028 -> 6.660; b24 7.150 /
// 7.160 and b32 7.414 / 7.395 even, b40 7.777 -> 8.663 slower, so cuBLASLt keeps 17-64 rows,
// except, with GRPST_CUDA_BF16_WS_NARROW set, the projections that the GEMM's plan gives its
// narrow kernel (qkv at the 8B shape: 80-82% of the copy bandwidth at 16-64 rows against
// cuBLASLt's 76-81%), which it then takes at any of 5-64 (decode steps with it: even, so off).
constexpr int kDefaultBf16WsMinRows = 5;
constexpr int kDefaultBf16WsMaxRows = 16;
// Contexts up to which the tensor-core decode attention's split-K aims at one block per SM, two
// beyond (the other decode kernels: two). One sequence on an H200: 4,096 keys in 16 splits gave a
// 3% faster step than in 33, 32,768 keys in 33 splits a 3% faster one than in 17.
constexpr int kMmaOneBlockPerSmMaxContext = 8192;
// Split-K of the tensor-core decode attention at short contexts: at most max(kMmaMinSplits,
// context / kDefaultMmaSplitKeys) splits, fewer than filling the GPU asks for. One sequence on an
// H200 (docs/benchmarks-gpu.md): 512 keys in 8 splits gave a 3.8% faster step than in 16 (2.4% than in
// 4), 1,024 and 2,048 keys in 8 a 4.8% and 3.9% faster one than in 17; from 4,096 keys the
// GPU-filling count stays.
constexpr int kMmaMinSplits = 8;
constexpr int kDefaultMmaSplitKeys = 256;
// And one sequence in at most kMmaFewSplits splits below kDefaultMmaFewSplitsBelow keys: the cap
// above measured best when it was set, but the kernels around the attention have changed since,
// and one sequence of 512 keys has stepped 0.7-1.8% faster in 4 splits than in 8 in each of the
// fourteen H200 runs since (harness-bench*.json, docs/benchmarks-gpu.md). At 768 keys 4 and 8
// splits are even (6 are slower, 2 and 3 slower still); from 1,024 keys 8 stay 0.6-1.4% faster
// than 4; two and four sequences measured the same either way.
constexpr int kMmaFewSplits = 4;
constexpr int kDefaultMmaFewSplitsBelow = 768;
// The staged decode attention (the streaming path's fp8 / int8 KV caches) at contexts up to
// kStagedCapMaxContext keys: at most kDefaultStagedMaxSplits splits, the most it merges in a
// thread-block cluster (more are merged by the last block to finish, through the L2). One
// sequence of an fp8 model with an fp8 cache on an H200, decode steps in turns: 2,048 keys 3.279
// ms in 16 splits against 3.508 in 33, 4,096 keys 3.707 against 3.741, 8,192 keys 4.570 against
// 4.198; two sequences of 2,048 keys 3.646 against 3.883 (docs/benchmarks-gpu-passes.md).
constexpr int kDefaultStagedMaxSplits = 16;
constexpr int kStagedCapMaxContext = 4096;
// Decode rows' q/k norm + RoPE + KV write inside the tensor-core decode attention
// (attention_decode_mma_qkv) instead of a kernel of their own before it, up to this many decode
// rows, by the format of the QKV projection (the same bits either way). First measured with
// every format off (docs/benchmarks-gpu-passes.md: one row within 1% either way, b64 1-4%
// slower); table runs 33-35 on an H200 then had it, in turns against the separate kernel, faster
// for the weight-only formats at one row in all six turns (int8_wo 1.2-1.7%, int4_awq 0.2-0.8%)
// and at 64 rows in all three runs (1.8-2.0%, 0.4-0.8%), faster for fp8 at one row (0.7-1.0%) but
// not at 64 (0.1-0.7% slower), and never for bf16 (even to 0.4% slower) or int8_sq (0.3-1.3%
// slower at one row, 0.8-1.2% at 64; docs/benchmarks-gpu.md, "Taken after table run 35").
constexpr int kDefaultMmaQkvMaxRows = 0;             // bf16, int8_sq
constexpr int kDefaultMmaQkvMaxRowsWeightOnly = 1 << 20;  // int8_wo, int4_awq: every decode batch
constexpr int kDefaultMmaQkvMaxRowsFp8 = 1;
inline int default_mma_qkv_max_rows(WeightFormat qkv) {
  switch (qkv) {
    case WeightFormat::int8_wo:
    case WeightFormat::int4_awq: return kDefaultMmaQkvMaxRowsWeightOnly;
    case WeightFormat::fp8: return kDefaultMmaQkvMaxRowsFp8;
    default: return kDefaultMmaQkvMaxRows;
  }
}
// Rows up to which quantized weights take the decode kernels (the weight-streaming GEMV up to
// kStreamMaxRows, then the skinny tensor-core kernel); larger batches run cuBLASLt (int4_awq /
// int8_wo on a dequantized weight, fp8 / int8_sq on quantized activations), except int4_awq /
// int8_wo up to kDefaultWoTiledMaxRows / kDefaultWoTiledInt8MaxRows, which take the tiled
// weight-only GEMM. On an H200 (Qwen3-8B shape, docs/benchmarks-gpu.md), int4 / int8_wo step at context
// 1,536: 16 rows, tiled 5.64 / 8.00 ms against the skinny kernel's 9.34 / 8.73 and cuBLASLt's
// 10.40 / 10.93; 32 rows, tiled 8.06 / 10.40 against cuBLASLt's 11.17 / 11.76; 64 rows, tiled
// 11.77 / 13.86 against cuBLASLt's 12.97 / 13.56. Since the tiled GEMM runs on wgmma (17-64 rows on
// a GPU of compute capability 9.0), int8_wo at 64 rows: tiled 11.78 ms against cuBLASLt's 13.71
// (13.20 on the mma.sync kernel), so int8_wo takes it up to 64 rows too.
// fp8: the streaming GEMV to 4 rows, cuBLASLt from 5; int8_sq: to 3 rows, cuBLASLt from 4. Decode
// steps at 512 keys in turns (after table run 33), the GEMV against cuBLASLt: fp8 b3 3.219 / 3.397
// ms, b4 3.309-3.354 / 3.370-3.426, b5 3.513 / 3.396, b8 3.915 / 3.502; int8_sq (cuBLASLt with 16
// rows' algorithm, gemm_lt.cu) b3 3.686 / 3.893, b4 3.921-3.959 / 3.890-3.901 (3.926 / 3.798 in
// table run 34), b5 4.364 / 3.920, b8 5.094 / 4.060.
constexpr int kDefaultSkinnyMaxRows = 8;
constexpr int kDefaultWoTiledMaxRows = 64;
constexpr int kDefaultWoTiledInt8MaxRows = 64;
constexpr int kDefaultFp8SkinnyMaxRows = 4;
constexpr int kDefaultInt8SqSkinnyMaxRows = 3;
// int4 shapes of up to 8 rows that the streaming GEMV does not take go to the tiled kernel
// (set_int4_tiled_fallback_min_rows): on an H200 int4 down_proj alone at 5-8 rows took 22 us
// against 32-34 in the skinny kernel, the decode step at 512 keys b5 3.76 against 3.79 ms, b6 3.97
// against 4.04, b8 4.24 against 4.34 (since on the warp-specialized kernel: b5 3.19, b8 3.68).
// int8_wo keeps the skinny kernel (its down_proj at 4-8 rows 23-27 us against 35-36 tiled; b8
// step 4.05 against 5.32 ms).
constexpr int kDefaultInt4TiledFallbackMinRows = 2;
// The skinny kernel's RMSNorm / activation-scale prologue as a pass of its own before it (true), or
// inside every block (false; GRPST_CUDA_SKINNY_PROLOGUE_PASS=0|1).
constexpr bool kDefaultSkinnyProloguePass = true;
// Decode rows up to which quantized models take the fused decode attention (q/k norm + RoPE + KV
// write inside it); more rows take the separate norm kernel and the tensor-core decode attention.
// 0: on an H200 the separate kernels measured faster at every batch from 1 to 64, for every format
// (int4_awq b1 307 against 285 tok/s, int8_sq b64 11.8 against 17.7 ms per step; docs/benchmarks-gpu.md).
constexpr int kDefaultFusedDecodeMaxRows = 0;
// The persistent one-launch decode step (decode_persistent) for one sequence of a bf16 model: off
// by default. On an H200 (Qwen3-8B shape, docs/benchmarks-gpu.md) its weight stream and barriers alone
// take 3.8 ms per step (93-95% of the roofline), but with its arithmetic 5.2 ms against 4.5 for
// the separate kernels. When on, it runs up to kDefaultPersistentMaxContext keys; longer contexts take
// the separate kernels, whose decode attention spreads them over more blocks.
constexpr bool kDefaultPersistentDecode = false;
constexpr int kDefaultPersistentMaxContext = 8192;

// A sparse layer's step as its experts saw it (P = T * top_k pairs): xn [T, H] the rows every
// expert's gate/up read (grouped row r reads xn[row_token[r]]), act [P, Im] the SwiGLU outputs their
// down reads (grouped rows), choice / slot [P] as moe_route / moe_group wrote them, and the tiles
// tiles[0, *tile_count) of grouped rows, at most max_tiles.
struct ExpertTapInputs {
  const bf16* xn;
  const bf16* act;
  const int32_t* choice;
  const int32_t* slot;
  const int32_t* row_token;
  const MoeTile* tiles;
  const int32_t* tile_count;
  int max_tiles;
  int T, K, E, H, Im;
};

// Calibration taps (runtime/cuda_calibration.h): a forward pass shows them each linear group's
// input, the rows it caches and the head's input, as device pointers ordered on ex.stream. Point
// numbers are grpst::CapturePoint's (AttnIn 0, OIn 1, MlpIn 2, DownIn 3, HeadIn 4 at layer = layers).
class ForwardTaps {
 public:
  virtual ~ForwardTaps() = default;
  // x [rows, cols]; with norm_w, x is the residual stream and the linear's input its RMSNorm.
  virtual Status linear_input(int layer, int point, const bf16* x, int rows, int cols, const float* norm_w, float eps,
                              const Exec& ex) = 0;
  // The layer's QKV output [T, (nh + 2 nkv) hd]: k as the cache stores it (q/k norm, RoPE), v as projected.
  virtual Status kv(int layer, const bf16* qkv, const int32_t* positions /*[T]*/, const float* q_norm_w,
                    const float* k_norm_w, float eps, const Rope& rope, int T, const Exec& ex) = 0;
  // A sparse layer's experts' inputs, once its experts have run (ExpertTapInputs). The default ignores them.
  virtual Status expert_inputs(int layer, const ExpertTapInputs& in, const Exec& ex) {
    (void)layer, (void)in, (void)ex;
    return ok_status();
  }
};

class Forward {
 public:
  // Allocates the activation scratch; the KV cache comes later (set_kv), sized from what is left.
  static Status create(const ModelDims& dims, ModelWeights weights, const ForwardLimits& limits, LtContext* lt,
                       int num_sms, std::unique_ptr<Forward>* out);
  Status set_kv(KvCache kv);
  // A rank of a tensor-parallel group: the dims and weights are this rank's shard, and `tp`
  // (owned by the caller) combines the partial results. Null (the default): the whole model.
  void set_tensor_parallel(TensorParallelHooks* tp) { tp_ = tp; }
  // Calibration: run() shows `taps` (owned by the caller; null, the default: none) every capture
  // point. Not for graph capture: taps copy sampled rows to the host.
  void set_taps(ForwardTaps* taps) { taps_ = taps; }
  ~Forward();
  Forward(const Forward&) = delete;
  Forward& operator=(const Forward&) = delete;

  // logits: [L, V] fp32.
  Status run(const StepInput& in, float* logits, const Exec& ex);
  // After run(): the final RMSNorm (the LM head's input) of token rows `rows` [n] of that step,
  // into y [n, H] bf16: the rows the head's prologue normalizes, written out.
  Status final_norm_rows(const int32_t* rows, int n, bf16* y, const Exec& ex);

  // y = a(x) . w^T with the epilogue, choosing the kernel for M rows (public for the harness).
  Status linear(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex);

  // The streaming decode path: the weight-streaming tensor-core GEMV and the fused decode
  // attention, for models with quantized layers (on by default; GRPST_CUDA_FUSED_DECODE=0 or
  // off: the previous kernels, which the harness compares in the same run).
  void set_fused_decode(bool on) { fused_decode_ = on; }
  // The weight-streaming GEMV for bf16 weights too: set_stream_bf16 puts bf16 models on the
  // streaming decode path (the GEMV at every batch up to kStreamMaxRows, and the staged decode
  // attention for fp8 / int8 caches; off by default); set_bf16_stream_max_rows takes the GEMV up to
  // that many rows (kDefaultBf16StreamMaxRows; at one row its exact one-token kernel measured 2%
  // faster than the bf16 GEMV). GRPST_CUDA_STREAM_BF16: 0 neither, 1 the streaming path, 2 one
  // row; GRPST_CUDA_STREAM_BF16_MAX_ROWS sets the rows.
  void set_stream_bf16(bool on) { stream_bf16_ = on; }
  void set_bf16_stream_max_rows(int rows) { bf16_stream_max_rows_ = rows; }
  // Decode attention on tensor cores for bf16 caches (attention_decode_mma; on by default,
  // GRPST_CUDA_MMA_DECODE=0 keeps the register-streaming kernel).
  void set_mma_decode(bool on) { mma_decode_ = on; }
  // That kernel taking up to `rows` decode rows straight from the QKV projection, with their q/k
  // norm + RoPE and KV write inside (attention_decode_mma_qkv; default_mma_qkv_max_rows,
  // GRPST_CUDA_MMA_QKV_MAX_ROWS), more after the separate qk_norm_rope_kv kernel.
  void set_mma_qkv_max_rows(int rows) { mma_qkv_max_rows_ = rows; }
  int mma_qkv_max_rows() const { return mma_qkv_max_rows_; }
  // bf16 weights take the GEMV up to this many rows (at most kGemvMaxRows), cuBLASLt beyond
  // (GRPST_CUDA_GEMV_MAX_ROWS overrides the measured default).
  void set_gemv_max_rows(int rows) { gemv_max_rows_ = rows; }
  void set_mma_one_block_max_context(int ctx) { mma_one_block_max_ctx_ = ctx; }
  // The short-context split cap above (GRPST_CUDA_MMA_SPLIT_KEYS; 0 turns it off).
  void set_mma_split_cap(int min_splits, int keys) {
    mma_min_splits_ = min_splits;
    mma_split_keys_ = keys;
  }
  // The few-splits cap above: at most few_splits splits below `below` keys
  // (GRPST_CUDA_MMA_FEW_SPLITS_BELOW; 0 turns it off).
  void set_mma_few_splits(int few_splits, int below) {
    mma_few_splits_ = few_splits;
    mma_few_splits_below_ = below;
  }
  // The staged attention's split cap above (GRPST_CUDA_STAGED_MAX_SPLITS; 0 turns it off).
  void set_staged_split_cap(int max_splits, int max_context) {
    staged_max_splits_ = max_splits;
    staged_cap_max_ctx_ = max_context;
  }
  // down_proj (bf16, K > 2N, no prologue) at one row through cuBLASLt's split-K (true) or the
  // bf16 GEMV (false, the default: with PDL it measured 1.7-2.8% faster per step than cuBLASLt).
  void set_narrow_lt(bool on) { narrow_lt_ = on; }
  // Why cuBLASLt's fp8 GEMM was refused (the skinny kernel ran instead); empty if it never was.
  const std::string& fp8_gemm_refusal() const { return fp8_gemm_refusal_; }
  // The decode-kernel crossovers for quantized weights above (GRPST_CUDA_SKINNY_MAX_ROWS,
  // GRPST_CUDA_FP8_SKINNY_MAX_ROWS, GRPST_CUDA_INT8SQ_SKINNY_MAX_ROWS), and the rows up to which
  // they take the fused decode attention (GRPST_CUDA_FUSED_DECODE_MAX_ROWS).
  void set_skinny_max_rows(int rows, int fp8_rows, int int8_sq_rows) {
    skinny_max_rows_ = rows;
    fp8_skinny_max_rows_ = fp8_rows;
    int8sq_skinny_max_rows_ = int8_sq_rows;
  }
  void set_fused_decode_max_rows(int rows) { fused_decode_max_rows_ = rows; }
  void set_skinny_prologue_pass(bool on) { skinny_prologue_pass_ = on; }
  // int4 / int8_wo weights past the skinny kernel's rows, up to `int4_rows` / `int8_rows` (at most
  // 64; 0 = never), through the tiled GEMM that decodes them in registers, beyond on a dequantized
  // weight through cuBLASLt (kDefaultWoTiledMaxRows, kDefaultWoTiledInt8MaxRows;
  // GRPST_CUDA_WO_TILED_MAX_ROWS, GRPST_CUDA_WO_TILED_INT8_MAX_ROWS).
  // int4 rows that the streaming GEMV does not take (its shared memory does not hold them:
  // down_proj from 5 rows) go to the tiled kernel from this many rows, to the skinny kernel below
  // (kDefaultInt4TiledFallbackMinRows, GRPST_CUDA_INT4_TILED_FALLBACK_MIN_ROWS).
  void set_int4_tiled_fallback_min_rows(int rows) { int4_tiled_fallback_min_rows_ = rows; }
  void set_wo_tiled_max_rows(int int4_rows, int int8_rows) {
    wo_tiled_max_rows_ = int4_rows;
    wo_tiled_int8_max_rows_ = int8_rows;
  }

  // The persistent one-launch decode step for one sequence of a bf16 model where
  // decode_persistent_supported (kDefaultPersistentDecode; GRPST_CUDA_PERSISTENT=1 turns it on) up
  // to `max_context` (GRPST_CUDA_PERSISTENT_MAX_CONTEXT).
  // Turning it on allocates its layer table and scratch (once; not inside a graph capture).
  Status set_persistent_decode(bool on, int max_context = kDefaultPersistentMaxContext);
  // Whether the last run() took it.
  bool last_run_persistent() const { return last_persistent_; }
  // For the harness: device stamps of its phases (PersistentDecode::trace; null: none), and its
  // launches without the arithmetic (PersistentDecode::stream_only).
  void set_persistent_trace(long long* trace) { persistent_.trace = trace; }
  void set_persistent_stream_only(bool on) { persistent_.stream_only = on; }

  const ModelDims& dims() const { return dims_; }
  size_t scratch_bytes() const { return scratch_bytes_; }

 private:
  Forward() = default;
  Status allocate();
  // The persistent decode step's layer table and scratch, once it is on and the KV cache is known.
  Status prepare_persistent();
  Status run_persistent(const StepInput& in, const Exec& ex);
  // A sparse layer's MLP (cuda_forward_moe.cu): the post-attention norm of h_, routing, the
  // experts, and their weighted sum added to h_; all on the device, so graph captures hold it.
  Status allocate_moe();
  Status moe_mlp(int layer, const LayerWeights& lw, int T, const Exec& ex);
  // The skinny kernel, with its prologue as a pass of its own when skinny_prologue_pass_.
  // x with the linear's RMSNorm / activation scale applied: in.x itself without either, else one
  // prologue pass into xn_ (for the kernels that take a plain x).
  Status plain_input(const LinearIn& in, int M, int K, const Exec& ex, const bf16** x);
  Status skinny(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex);
  // The skinny kernel over any number of rows, 64 at a time (no cuBLASLt path for this weight).
  Status skinny_rows(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex);
  // An int8_wo / int4 weight larger than wtmp_ (a quantized LM head): dequantized and multiplied
  // in slices of rows that fit, each slice's GEMM writing its columns of y.
  Status sliced_dequant_gemm(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex);
  TensorParallelHooks* tp_ = nullptr;
  ForwardTaps* taps_ = nullptr;

  ModelDims dims_;
  ModelWeights w_;
  KvCache kv_;
  ForwardLimits limits_;
  LtContext* lt_ = nullptr;
  int num_sms_ = 132;
  bool fused_decode_ = true;
  bool stream_bf16_ = false;
  int bf16_stream_max_rows_ = kDefaultBf16StreamMaxRows;
  int bf16_ws_min_rows_ = kDefaultBf16WsMinRows;
  int bf16_ws_max_rows_ = kDefaultBf16WsMaxRows;
  bool mma_decode_ = true;
  int mma_qkv_max_rows_ = kDefaultMmaQkvMaxRows;
  int gemv_max_rows_ = kDefaultGemvMaxRows;
  int mma_one_block_max_ctx_ = kMmaOneBlockPerSmMaxContext;
  int mma_min_splits_ = kMmaMinSplits;
  int mma_split_keys_ = kDefaultMmaSplitKeys;
  // Steps of at least this many tokens run a sparse layer's experts on the tensor cores
  // (moe_experts_wide); 0: never (GRPST_CUDA_MOE_WIDE_MIN_TOKENS).
  int moe_wide_min_tokens_ = kMoeWideMinTokens;
  int mma_few_splits_ = kMmaFewSplits;
  int mma_few_splits_below_ = kDefaultMmaFewSplitsBelow;
  int staged_max_splits_ = kDefaultStagedMaxSplits;
  int staged_cap_max_ctx_ = kStagedCapMaxContext;
  bool narrow_lt_ = false;
  std::string fp8_gemm_refusal_;
  int skinny_max_rows_ = kDefaultSkinnyMaxRows;
  int fp8_skinny_max_rows_ = kDefaultFp8SkinnyMaxRows;
  int int8sq_skinny_max_rows_ = kDefaultInt8SqSkinnyMaxRows;
  bool skinny_prologue_pass_ = kDefaultSkinnyProloguePass;
  int wo_tiled_max_rows_ = kDefaultWoTiledMaxRows;
  int wo_tiled_int8_max_rows_ = kDefaultWoTiledInt8MaxRows;
  int int4_tiled_fallback_min_rows_ = kDefaultInt4TiledFallbackMinRows;
  SplitScratch split_;  // linear_wo_tiled's and linear_bf16_ws's partial sums and counters
  int fused_decode_max_rows_ = kDefaultFusedDecodeMaxRows;
  bool quantized_ = false;  // any layer weight not bf16: the streaming decode path
  bool persistent_on_ = kDefaultPersistentDecode;
  int persistent_max_ctx_ = kDefaultPersistentMaxContext;
  bool last_persistent_ = false;
  PersistentDecode persistent_;  // its launch arguments but the step's inputs; layers null: not prepared
  size_t scratch_bytes_ = 0;
  std::vector<void*> allocations_;
  // activations
  bf16* h_ = nullptr;       // [T, H] residual stream
  bf16* qkv_ = nullptr;     // [T, (nh + 2 nkv) hd]
  bf16* q_ = nullptr;       // [T, nh hd]
  bf16* attn_ = nullptr;    // [T, nh hd]
  bf16* act_ = nullptr;     // [T, I]
  bf16* xn_ = nullptr;      // [T, max K] materialized prologue (large batches)
  bf16* tmp_ = nullptr;     // [T, 2I] GEMM output before SwiGLU (large batches)
  bf16* gathered_ = nullptr;  // [L, H] rows that need logits
  float* attn_ws_ = nullptr;  // split-K partials
  uint8_t* xq_ = nullptr;     // [T, max K] quantized activations (fp8 / int8_sq)
  float* xs_ = nullptr;       // [T] per-token scales (int8_sq)
  int32_t* acc_ = nullptr;    // [T, max N] int32 products (int8_sq); [L, vocab] for a quantized head
  bf16* wtmp_ = nullptr;      // [max N * max K] dequantized weight (int8_wo / int4 prefill)
  size_t acc_elems_ = 0;      // M x N that acc_ holds
  size_t wtmp_elems_ = 0;     // elements that wtmp_ holds (the largest layer weight)
  // sparse layers (P = T * top_k (token, rank) pairs; grouped rows: the pairs ordered by expert)
  struct MoeScratch {
    bf16* xn = nullptr;            // [T, H] the post-attention norm of h_ (router's and experts' input)
    float* logits = nullptr;       // [T, E] router logits
    int32_t* choice = nullptr;     // [T, K] each token's experts, by falling probability
    float* weight = nullptr;       // [T, K] their weights
    int32_t* slot = nullptr;       // [T, K] grouped row of each (token, rank)
    int32_t* row_token = nullptr;  // [P] token of each grouped row
    MoeTile* tiles = nullptr;      // [moe_max_tiles(P, E)] (of kMoeTileRows rows: the larger bound)
    int32_t* tile_count = nullptr; // [1]
    bf16* act = nullptr;           // [P, Im] SwiGLU outputs, grouped rows
    bf16* out = nullptr;           // [P, H] expert outputs, grouped rows
    bf16* xq = nullptr;            // [P, max(H, Im)] fp8 / int8_sq experts' quantized inputs (else null)
    float* xs = nullptr;           // [P] int8_sq's row scales of them
  } moe_;
};

}  // namespace grpst::cuda
