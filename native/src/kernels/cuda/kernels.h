// The CUDA kernels' host API: one launcher per op, each enqueues on Exec::stream, checks the
// launch and returns a Status (never exits). Tensors are row-major; shapes are in comments.
// Every launcher has a CPU twin in test/gpu/kernels/reference.cpp and a parity test there.
#pragma once
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

#include "cuda_status.h"
#include "grpst/device_sample_rules.h"

namespace grpst::cuda {

using bf16 = __nv_bfloat16;

// ---- embeddings, norms, activations ------------------------------------------------------------

// out[t] = table[ids[t]]; ids outside [0, V) give a zero row.
Status embedding(const int32_t* ids /*[T]*/, const bf16* table /*[V,H]*/, bf16* out /*[T,H]*/,
                 int T, int H, int V, const Exec& ex);

// HF Qwen3RMSNorm: y = bf16(w * bf16(x * rsqrt(mean(x^2) + eps))), w in fp32 as engines store
// norms (folded AWQ / SmoothQuant factors stay exact). With `residual`, x is first replaced by
// bf16(x + residual) and that sum is written to residual_out (may alias x).
Status rmsnorm(const bf16* x /*[M,H]*/, const bf16* residual /*[M,H] or null*/,
               bf16* residual_out /*[M,H] or null*/, const float* w /*[H]*/, bf16* y /*[M,H]*/,
               int M, int H, float eps, const Exec& ex);

// out[m,j] = bf16(bf16(silu(g)) * u) with (g,u) = gate_up[m, 2j], gate_up[m, 2j+1]: the engine's
// gate and up rows are interleaved at load so one GEMM produces both.
Status swiglu(const bf16* gate_up /*[M,2I]*/, bf16* out /*[M,I]*/, int M, int I, const Exec& ex);

// Calibration statistics of x's first `cols` columns: abs_max[c] = max(abs_max[c], max_r |x[r,c]|)
// and, when abs_sum is not null, abs_sum[c] += sum_r |x[r,c]| (rows summed in fp32 in runs of 64,
// the runs in fp64; their order varies). Accumulates into what the buffers already hold.
Status column_abs_stats(const bf16* x /*[rows, ld]*/, int rows, int cols, int64_t ld, float* abs_max /*[cols]*/,
                        double* abs_sum /*[cols] or null*/, const Exec& ex);

// ---- paged KV cache ----------------------------------------------------------------------------

enum class KvDtype : int { bf16 = 0, fp8 = 1, int8 = 2 };

// One layer's cache: k and v are [num_blocks, nkv, block_size, head_dim] of `dtype`; fp8/int8
// store round(value / scale) (per-tensor scales, 1 for bf16).
struct KvLayer {
  void* k;
  void* v;
  float k_scale;
  float v_scale;
};
struct KvGeometry {
  int num_blocks;
  int block_size;
  int nkv;
  int head_dim;
  KvDtype dtype;
};
struct PagedTables {
  const int32_t* block_tables;  // [num_seqs, max_blocks_per_seq] cache block of each page
  int max_blocks_per_seq;
};
// RoPE as transformers computes it: angle = pos * inv_freq[i] in fp32 (inv_freq from the model
// config, YaRN/linear/dynamic already folded in), cos/sin scaled by attention_scaling.
struct Rope {
  const float* inv_freq;  // [head_dim/2], device
  float attention_scaling;
};

// qkv rows hold [q heads | k heads | v heads]. Writes q (q_norm, RoPE) to q_out and k (k_norm,
// RoPE) and v to the cache at slot = block * block_size + offset (slot < 0: not written).
// q_norm_w / k_norm_w may be null (no per-head norm).
Status qk_norm_rope_kv(const bf16* qkv /*[T,(nh+2*nkv)*hd]*/, const int32_t* positions /*[T]*/,
                       const int32_t* slots /*[T]*/, const float* q_norm_w /*[hd]*/,
                       const float* k_norm_w /*[hd]*/, float eps, Rope rope, int T, int nh,
                       KvGeometry geo, KvLayer kv, bf16* q_out /*[T,nh,hd]*/, const Exec& ex);

// ---- attention ---------------------------------------------------------------------------------

// One query row per entry r: attends keys [0, ctx[r] + ctx_add) of block-table row
// seq_of_row[r] (r itself when null). GQA: query head h reads kv head h / (nh / nkv). The
// sequence is split into num_splits parts reduced at the end (long contexts, small batches);
// workspace holds attention_decode_workspace() floats when num_splits > 1 and must be zeroed
// once when it is allocated (it starts with merge counters that every launch leaves at zero).
// Geometries with 16-byte K/V rows take the kernel that stages K/V through shared memory and
// merges splits in place; staged = false (or GRPST_CUDA_LEGACY_DECODE=1) keeps the
// register-streaming kernel with its separate reduce, which measured faster at short contexts.
Status attention_decode(const bf16* q /*[R,nh,hd]*/, const int32_t* ctx /*[R]*/, int ctx_add,
                        const int32_t* seq_of_row /*[R] or null*/, PagedTables tables, int R,
                        int nh, KvGeometry geo, KvLayer kv, float softmax_scale, int num_splits,
                        float* workspace, bf16* out /*[R,nh*hd]*/, const Exec& ex, bool staged = true);
size_t attention_decode_workspace(int R, int nh, int head_dim, int num_splits);
// Splits for R rows at contexts up to max_ctx: about blocks_per_sm blocks per SM, each split of
// at least ~32 keys.
int attention_decode_splits(int R, int nkv, int max_ctx, int num_sms, int blocks_per_sm = 2);

// attention_decode on tensor cores (attention_decode_mma.cu): the query heads of a kv head form
// the rows of an mma tile against its K/V, split-K merged in the launch: up to 16 splits of a
// (row, kv head) as one thread-block cluster through distributed shared memory, more by the last
// block to finish (GRPST_CUDA_MMA_CLUSTER_MERGE=0: always by the last block; the same bits;
// GRPST_CUDA_MMA_SPLIT_REDUCE=1: by a reduce kernel). bf16 caches with head_dim 64 or
// 128, at most 8 query heads per kv head and block_size a multiple of 16; the workspace is
// attention_decode_workspace()'s (zeroed once: its merge counters return to zero after every
// launch). P is rounded to bf16 for the PV product.
bool attention_decode_mma_supported(KvGeometry geo, int nh);
Status attention_decode_mma(const bf16* q /*[R,nh,hd]*/, const int32_t* ctx /*[R]*/, int ctx_add,
                            const int32_t* seq_of_row /*[R] or null*/, PagedTables tables, int R, int nh,
                            KvGeometry geo, KvLayer kv, float softmax_scale, int num_splits, float* workspace,
                            bf16* out /*[R,nh*hd]*/, const Exec& ex);
// The same kernel straight from the QKV projection of decode rows [0, R): each block computes
// its query heads' q_norm + RoPE and its kv head's k_norm + RoPE at positions[r] with the bits of
// qk_norm_rope_kv, the block whose split holds the new token writes its K / V to the cache at
// slots[r] (slot < 0: not written), and the context is positions[r] + 1 keys, the new one
// taken from shared memory. Replaces qk_norm_rope_kv + attention_decode_mma for decode rows.
Status attention_decode_mma_qkv(const bf16* qkv /*[R,(nh+2*nkv)*hd]*/, const int32_t* positions /*[R]*/,
                                const int32_t* slots /*[R]*/, const int32_t* seq_of_row /*[R] or null*/,
                                const float* q_norm_w, const float* k_norm_w, float eps, Rope rope,
                                PagedTables tables, int R, int nh, KvGeometry geo, KvLayer kv, float softmax_scale,
                                int num_splits, float* workspace, bf16* out /*[R,nh*hd]*/, const Exec& ex);

// Decode rows [0, R) straight from the QKV projection, in one launch: each row's q_norm /
// k_norm + RoPE at position positions[r] (as qk_norm_rope_kv), its new K/V written to the cache
// at slots[r] (slot < 0: not written), and attention over keys [0, positions[r] + 1) as
// attention_decode with ctx_add = 1 (the newest key taken from the block, not re-read).
bool attention_decode_fused_supported(KvGeometry geo, int nh, int R, int num_splits);
Status attention_decode_fused(const bf16* qkv /*[R,(nh+2*nkv)*hd]*/, const int32_t* positions /*[R]*/,
                              const int32_t* slots /*[R]*/, const int32_t* seq_of_row /*[R] or null*/,
                              const float* q_norm_w, const float* k_norm_w, float eps, Rope rope,
                              PagedTables tables, int R, int nh, KvGeometry geo, KvLayer kv,
                              float softmax_scale, int num_splits, float* workspace,
                              bf16* out /*[R,nh*hd]*/, const Exec& ex);

// Prefill chunks: sequence s has q_len[s] query rows starting at row q_start[s] of q; they are
// the last q_len[s] positions of its ctx_len[s] cached keys (causal). Head dims 64 and 128 use a
// tensor-core flash-attention kernel; others fall back to the decode kernel row by row, which
// needs token_pos / token_seq (per query row: position, block-table row).
struct PrefillBatch {
  int num_seqs;
  int max_q_len;
  int num_tokens;
  const int32_t* q_start;    // [S]
  const int32_t* q_len;      // [S]
  const int32_t* ctx_len;    // [S]
  const int32_t* seq_index;  // [S] block-table row
  const int32_t* token_pos;  // [T] for the rows [first_row, first_row + num_tokens)
  const int32_t* token_seq;  // [T]
  int first_row;             // first query row of the prefill part (fallback path)
};
Status attention_prefill(const bf16* q /*[T,nh,hd]*/, const PrefillBatch& batch,
                         PagedTables tables, int nh, KvGeometry geo, KvLayer kv,
                         float softmax_scale, bf16* out /*[T,nh*hd]*/, const Exec& ex);

// ---- the persistent decode step (one sequence, bf16) -------------------------------------------

// One layer as decode_persistent reads it (an array of them in device memory).
struct PersistentLayer {
  const float* input_norm;  // [H]
  const float* post_norm;   // [H]
  const float* q_norm;      // [hd] or null
  const float* k_norm;      // [hd] or null
  const bf16* qkv;          // [(nh + 2 nkv) hd, H]
  const bf16* o;            // [H, nh hd]
  const bf16* gate_up;      // [2I, H], gate / up rows interleaved
  const bf16* down;         // [H, I]
  KvLayer kv;
};
struct PersistentDecode {
  const PersistentLayer* layers = nullptr;  // [num_layers], device memory
  int num_layers = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0;
  float eps = 1e-6f, softmax_scale = 1.f;
  Rope rope{};
  KvGeometry geo{};
  PagedTables tables{};
  const int32_t* positions = nullptr;  // [1] the token's position (it attends [0, position])
  const int32_t* slots = nullptr;      // [1] cache slot of its K / V (< 0: not written)
  const int32_t* token_seq = nullptr;  // [1] its block-table row
  bf16* h = nullptr;                   // [H] residual stream: the embedding in, the last layer's out
  bf16* qkv = nullptr;                 // [(nh + 2 nkv) hd] scratch
  bf16* attn = nullptr;                // [nh hd] scratch
  bf16* act = nullptr;                 // [I] scratch
  float* partials = nullptr;           // decode_persistent_partials() floats (split softmax)
  unsigned* sync = nullptr;            // decode_persistent_sync_words() words, zeroed once
  int splits = 1;                      // of the context, per kv head (decode_persistent_splits)
  // Null, or [num_layers][kPersistentTraceStamps] clock64() stamps of block 0 (the harness's
  // breakdown): each phase's own work done, then the grid barrier after it passed.
  long long* trace = nullptr;
  // Measurement only: the weight ring and the barriers without the arithmetic or the attention
  // (what this design's data movement alone takes; the results are meaningless).
  bool stream_only = false;
};
constexpr int kPersistentTraceStamps = 10;
// Every layer of one decode step of one sequence in one cooperative launch of a block per SM:
// each block's share of every weight streams through a shared-memory ring of bulk copies that
// runs ahead across phases and layers, the phases of a layer meet at grid barriers, and
// the prologues / epilogues round as rmsnorm + linear, qk_norm_rope_kv and attention_decode do.
// bf16 weights and cache, head_dim 32 / 64 / 128 / 256, at most 8 query heads per kv head.
bool decode_persistent_supported(int hidden, int intermediate, int heads, int kv_heads, KvGeometry geo);
size_t decode_persistent_partials(int heads, int head_dim, int splits);
constexpr int decode_persistent_sync_words(int kv_heads) { return 2 + kv_heads; }
int decode_persistent_splits(int max_context, int kv_heads, int num_sms);
Status decode_persistent(const PersistentDecode& p, int num_sms, const Exec& ex);

// ---- linear layers -----------------------------------------------------------------------------

// The activation a linear layer multiplies: x, optionally RMS-normalised first (HF rounding) and
// then scaled per input channel (AWQ pre-quant scale, SmoothQuant smoothing): a = bf16(a * s).
struct LinearIn {
  const bf16* x = nullptr;          // [M,K]
  const float* norm_w = nullptr;    // [K] or null (fp32, as engines store norms)
  float eps = 1e-6f;
  const bf16* act_scale = nullptr;  // [K] or null
};
enum class Epilogue : int {
  store = 0,         // y[m,n] = acc (bf16 rounded, or fp32 when f32_out)
  residual_add = 1,  // y[m,n] = bf16(y[m,n] + bf16(acc)), in place
  swiglu = 2,        // rows (2j, 2j+1) are (gate, up): y[m,j] = bf16(bf16(silu(g)) * u), y is [M,N/2]
};
struct LinearOut {
  void* y = nullptr;
  Epilogue epi = Epilogue::store;
  bool f32_out = false;  // store only
  // residual_add only: y was last written two kernels or more before this linear's kernel (not by
  // the one just before it), so the streaming GEMV may load it before its wait on the previous
  // kernel (every kernel of this backend triggers its dependents after its own wait: when one runs,
  // the kernel before the previous one has finished). The forward sets it for o_proj and down_proj.
  bool residual_settled = false;
};

enum class WeightFormat : int { bf16 = 0, int8_wo = 1, int4_awq = 2, fp8 = 3, int8_sq = 4 };
const char* weight_format_name(WeightFormat f);

// A linear weight [N,K] as the GPU kernels read it.
//  bf16:     data bf16 [N,K]
//  int8_wo:  data int8 in mma-fragment order (repack_int8_wo), channel_scale [N]
//  int4_awq: data uint32 in mma-fragment order (repack_int4), group_scale / group_zero bf16 in
//            [N/16][K/G][8][2] order (each tile's rows paired j, j + 8: a lane's two rows in one
//            word); zero holds 128 + z (null: symmetric, z = 8). The engine's
//            fp32 scales become bf16 here: the tensor cores multiply bf16((q - z) * s).
//  fp8:      data e4m3 [N,K], w_scale and x_scale per-tensor (device floats):
//            y = (e4m3(x / x_scale) . w) * x_scale * w_scale
//  int8_sq:  data int8 [N,K], channel_scale [N]; activations quantized per token:
//            xs = amax / 127, xq = round_half_even(x / xs)
struct Weight {
  WeightFormat format = WeightFormat::bf16;
  int N = 0, K = 0;
  const void* data = nullptr;
  const float* channel_scale = nullptr;
  const bf16* group_scale = nullptr;
  const bf16* group_zero = nullptr;
  int group_size = 0;
  const float* w_scale = nullptr;
  const float* x_scale = nullptr;
};

// Weight-streaming bf16 GEMV for M <= 8 rows: y = a(x) . w^T with the prologue and epilogue fused.
Status gemv_bf16(const LinearIn& in, const bf16* w /*[N,K]*/, const LinearOut& out, int M, int N,
                 int K, const Exec& ex);
constexpr int kGemvMaxRows = 8;

// Tensor-core skinny GEMM for quantized weights at M <= 64 tokens: the weight tile is decoded
// in registers (int4/int8 -> bf16; fp8 and int8_sq run e4m3 / s8 mma directly); the prologue and
// epilogue are fused. All formats except bf16.
Status linear_skinny(const LinearIn& in, const Weight& w, const LinearOut& out, int M,
                     const Exec& ex);
constexpr int kSkinnyMaxRows = 64;

// Split-K scratch of linear_wo_tiled: fp32 partial sums, per K slice one block's [rows][M rounded up
// to 16 / 32 / 64] for every column of blocks (so about splits x N x 64 floats at most), and one
// arrival counter per column of blocks (zero at rest: the last block of a column resets it).
struct SplitScratch {
  float* partial = nullptr;
  size_t partial_floats = 0;
  int* counters = nullptr;  // zero-initialized
  int counter_count = 0;
};
// Counters linear_wo_tiled needs for a weight of N rows (one per 64-row column of blocks).
constexpr int wo_tiled_counters(int N) { return (N + 63) / 64; }
// Tiled tensor-core GEMM for int8_wo / int4_awq weights at up to 64 tokens (batched decode):
// 64-256 weight rows per block, decoded in registers, x[M,K] (the prologue already applied)
// through a ring in shared memory (cp.async, or on Hopper from 2 tokens the tensor memory
// accelerator fed by a producer warp), K split across blocks where the rows alone do not fill the
// GPU (as many slices as `sc` holds; the sums are added in slice order), or on Hopper at up to 32
// tokens shared by stream-K where the blocks would leave SMs idle (the pieces of a tile added in
// order). Epilogues as for linear_skinny.
bool linear_wo_tiled_supported(const Weight& w);
Status linear_wo_tiled(const bf16* x, const Weight& w, const LinearOut& out, int M, const SplitScratch& sc,
                       int num_sms, const Exec& ex);
// The K slices linear_wo_tiled takes for this call (for tests that must cover the split path);
// rows, when given, receives its block's weight rows, wgmma whether it runs the warpgroup (wgmma)
// kernel (on a GPU of compute capability 9.0 unless GRPST_CUDA_WO_WGMMA=0) or the mma.sync one,
// overlap whether that kernel overlaps its steps (int4 at 17-32 rows with groups under 64 columns
// unless GRPST_CUDA_WO_WGMMA_OVERLAP=0), pipe its pipelined form (0 none, 1 by steps, 2 by half
// steps, 3 warp-specialized: 2-64 rows by default; GRPST_CUDA_WO_WGMMA_PIPE=0-3 forces one), stream_k
// the warp-specialized kernel's blocks under stream-K (0: by K slices; GRPST_CUDA_WO_WS_STREAMK).
int linear_wo_tiled_splits(const Weight& w, int M, const SplitScratch& sc, int num_sms, int* rows = nullptr,
                           bool* wgmma = nullptr, bool* overlap = nullptr, int* pipe = nullptr, int* stream_k = nullptr);
constexpr int kWoTiledMaxRows = 64;

// bf16 GEMM for batched decode (up to 64 tokens) on Hopper (sm_90a code, compute capability 9.0):
// 256 weight rows per block streamed by the tensor memory accelerator and multiplied by wgmma from
// shared memory (linear_bf16_ws.cu), x[M,K] without a prologue, K slices or stream-K through `sc`
// as linear_wo_tiled; epilogues as for linear_skinny. Supported: bf16, K % 8 == 0, the weights
// 16-byte aligned, on such a GPU, unless GRPST_CUDA_BF16_WS=0.
struct Bf16WsPlan {
  int kernel = 0;    // 0: wgmma by weight rows (256-row blocks); by tokens: 1 (128-row blocks), 2 (256),
                     // 3 (one warpgroup of 32-64 rows, the whole of K where that fills the GPU;
                     // unasked where 48-64-row blocks make one wave with GRPST_CUDA_BF16_WS_NARROW=1;
                     // 2, 3: more projections, linear_bf16_ws.cu)
  int rows = 256;    // weight rows a block
  int splits = 1;    // K slices (blocks per tile of rows)
  int stream_k = 0;  // blocks under stream-K (kernel 0 only), or 0
  bool spread = false;  // the K slices' sums added by every block of a tile, each its rows
};
constexpr int kBf16WsMaxRows = 64;
bool linear_bf16_ws_supported(const Weight& w);
Bf16WsPlan linear_bf16_ws_plan(const Weight& w, int M, const SplitScratch& sc, int num_sms);
// Whether its plan takes the narrow kernel (3) for w: the forward's question at 17-64 rows,
// without the rest of the plan.
bool linear_bf16_ws_narrow(const Weight& w, int num_sms);
Status linear_bf16_ws(const bf16* x, const Weight& w, const LinearOut& out, int M, const SplitScratch& sc,
                      int num_sms, const Exec& ex);

// Weight-streaming tensor-core GEMV for decode (M <= kStreamMaxRows tokens) in every format,
// with the same prologue and epilogue; the fastest path at small batch where it applies
// (linear_stream_supported: bf16 K % 8, fp8 / int8_sq K % 16, int4 groups of 64, 128 or 256,
// activations within shared memory: all rows' in one block, or, outside int4, each block of a
// cluster of 2 or 4 holding its share of K). int4 groups are finished in fp32, y = sum over groups of
// s * sum_k (q - z) x, instead of multiplying bf16((q - z) * s) on the tensor cores.
bool linear_stream_supported(const Weight& w, int M);
Status linear_stream(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex);
// Whether this thread's last linear_stream launch took the exact kernel (whole 16-row tiles and
// rounds, compile-time item offsets; GRPST_CUDA_STREAM_EXACT=0 turns it off): for tests and benches.
bool linear_stream_last_exact();
// The shares of K this thread's last linear_stream launch split each tile into (1: none; 2 or 4
// blocks of a cluster where one block's shared memory does not hold all rows' activations).
int linear_stream_last_ksplit();
constexpr int kStreamMaxRows = 8;

// cuBLASLt: handle, workspace and cached algorithms per shape.
struct LtContext;
Status lt_create(LtContext** ctx, size_t workspace_bytes);
void lt_destroy(LtContext* ctx);
// y[M,N] (+)= x[M,K] . w[N,K]^T; y bf16 or fp32; accumulate adds into y (residual). ldy: y's
// row stride when it is a column slice of a wider matrix (0: N).
Status gemm_bf16(LtContext* ctx, const bf16* x, const bf16* w, void* y, bool f32_out,
                 bool accumulate, int M, int N, int K, const Exec& ex, int ldy = 0);
// y[M,N] (+)= (x_scale * w_scale) * xq[M,K] . wq[N,K]^T, e4m3 inputs, bf16 (or fp32: logits) out.
Status gemm_fp8(LtContext* ctx, const uint8_t* xq, const uint8_t* wq, const float* x_scale,
                const float* w_scale, void* y, bool accumulate, int M, int N, int K,
                const Exec& ex, bool f32_out = false);
// acc[M,N] = xq[M,K] . wq[N,K]^T in int32 (int8 tensor cores).
Status gemm_int8(LtContext* ctx, const int8_t* xq, const int8_t* wq, int32_t* acc, int M, int N,
                 int K, const Exec& ex);

// ---- quantization helpers ----------------------------------------------------------------------

// These three take one row per block, the row's statistics by the whole block.
// out = a(x) in bf16 (the prologue materialized for the GEMM path).
Status linear_prologue(const LinearIn& in, bf16* out /*[M,K]*/, int M, int K, const Exec& ex);
// xq = e4m3(a(x) / x_scale), per-tensor static scale.
Status quantize_fp8(const LinearIn& in, const float* x_scale, uint8_t* xq /*[M,K]*/, int M, int K,
                    const Exec& ex);
// xq = round(a(x) * 127 / amax_m), x_scales[m] = amax_m / 127.
Status quantize_int8_rows(const LinearIn& in, int8_t* xq /*[M,K]*/, float* x_scales /*[M]*/,
                          int M, int K, const Exec& ex);
// The int8_sq GEMM epilogue: v = acc * x_scales[m] * w_scales[n], then `out` as for linears.
Status dequant_int32(const int32_t* acc /*[M,N]*/, const float* x_scales, const float* w_scales,
                     const LinearOut& out, int M, int N, const Exec& ex);
// int8_wo / int4_awq weights -> bf16 [N,K] (prefill: dequantize then cuBLASLt).
Status dequant_weight(const Weight& w, bf16* out /*[N,K]*/, const Exec& ex);
// Rows [n0, n0 + rows) of an int8_wo / int4_awq weight as a weight of its own (n0 a multiple of
// 16: the packed layouts hold 16-row tiles one after another), for dequantizing in slices.
Status weight_rows(const Weight& w, int n0, int rows, Weight* out);

// Load-time repacks from the engine's natural layouts:
//  int8_wo natural: int8 [N,K];  int4 natural: uint8 [N,K/2], element k in byte k/2, low nibble
//  first, unsigned 0..15; scales fp32 [N,K/G], zeros uint8 [N,K/G] (null: 8). See
//  src/quant/LAYOUTS.md.
// N must be a multiple of 16 and K of 64 (zero-padded by the caller otherwise).
Status repack_int8_wo(const int8_t* natural, int N, int K, int8_t* packed, const Exec& ex);
Status repack_int4(const uint8_t* natural, const float* scales, const uint8_t* zeros, int N, int K,
                   int group_size, uint32_t* packed, bf16* packed_scales, bf16* packed_zeros,
                   const Exec& ex);

// ---- sampling ----------------------------------------------------------------------------------

// One row's sampling settings (the CPU sampler's semantics): penalties over the row's token
// history, temperature (0 = greedy), top_k, top_p, min_p, then a draw seeded by (seed, step).
struct SampleParams {
  float temperature;
  float top_p;
  float min_p;
  float repetition_penalty;
  float presence_penalty;
  float frequency_penalty;
  int top_k;
  int row;  // logits row to sample (output b goes to tokens[b])
  // The row's history in SampleHistory's lists (counts 0: no penalties): the sequence's distinct
  // prompt tokens (the repetition penalty's) and (token, times generated) of its output so far.
  int prompt_begin, prompt_count;
  int output_begin, output_count;
  // Its bans and biases in SampleHistory::edits (sorted by token), and its allowed-token mask's
  // index in SampleHistory::masks (-1: none).
  int edit_begin, edit_count;
  int mask;
  unsigned long long seed;
  unsigned long long step;
};
// The histories of a batch's rows, as the host sampler keeps them (no state on the device: each
// step sends its rows' lists, so preemption, drafted rows and host-sampled steps need no syncing).
// Order: a token outside the row's mask or banned is -inf, a biased one starts from logit + bias;
// then repetition penalty (tokens in the prompt or the output), presence / frequency penalties
// (output tokens), greedy argmax when temperature is 0, else logits / temperature, top_k (ties at
// the k-th value kept), top_p over the top_k survivors (smallest set whose mass reaches top_p),
// min_p (p >= min_p * p_max), and a Gumbel-max draw whose noise is a hash of (seed, step, token):
// the same seed gives the same tokens on every run and batch layout. A row whose every token is
// -inf draws token -1. grpst/device_sample_rules.h holds what the CPU twin shares with it.
struct SampleHistory {
  const int32_t* prompt_tokens;  // distinct tokens, each row's range from prompt_begin
  const int2* output_counts;     // (token, count > 0), distinct tokens, each row's range from output_begin
  const LogitEdit* edits;        // each row's range from edit_begin, sorted by token
  const uint32_t* masks;         // [masks, ceil(V / 32)] allowed-token bits
};
// logits are left as they are; work holds B*V floats.
Status sample(const float* logits /*[B,V]*/, const SampleParams* params /*[B], device*/,
              SampleHistory history, int B, int V, float* work /*[B,V]*/, int32_t* tokens /*[B]*/,
              float* logprobs /*[B] log-softmax of the raw logits at the token, or null*/,
              const Exec& ex);

// Top logprobs on the device: for each request, the n (<= kMaxTopLogprobs) best entries of its
// logits row, best first (ties: the lower id), with their log-softmax over the raw row.
constexpr int kMaxTopLogprobs = 20;
struct TopLogprobsRow {
  int row;     // logits row
  int n;       // entries wanted (0: none)
  int target;  // a prompt token whose logprob and rank are wanted too, -1: none
};
// top_tokens / top_logprobs: [R, kMaxTopLogprobs], the first n of each row written (token -1
// where a row has fewer ranked entries, e.g. NaN logits). target_logprobs / target_ranks [R]
// (written where target >= 0): its log-softmax and rank, the entries >= its logit (at least 1),
// as the host sampler's rank_of counts them.
Status top_logprobs(const float* logits /*[*,V]*/, const TopLogprobsRow* rows /*[R], device*/, int R, int V,
                    int32_t* top_tokens, float* top_logprobs, float* target_logprobs, int32_t* target_ranks,
                    const Exec& ex);

}  // namespace grpst::cuda
