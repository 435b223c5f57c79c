#include "cuda_forward.h"

#include "cuda_tp.h"
#include "../kernels/cuda/env_switch.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace grpst::cuda {

namespace {
bool has_format(const ModelWeights& w, WeightFormat f) {
  for (const auto& l : w.layers)
    if (l.qkv.format == f || l.o.format == f || l.gate_up.format == f || l.down.format == f) return true;
  return w.lm_head.format == f;
}
bool has_quantized_layers(const ModelWeights& w) {
  for (const auto& l : w.layers)
    for (const Weight* x : {&l.qkv, &l.o, &l.gate_up, &l.down})
      if (x->format != WeightFormat::bf16) return true;
  return false;
}
// Rows up to which the decode kernels beat cuBLASLt (measured on an H200): the bf16 GEMV up to
// Forward's gemv_max_rows_ (kDefaultGemvMaxRows); quantized weights the streaming GEMV, then the
// skinny kernel, up to their skinny_max_rows (kDefaultSkinnyMaxRows and the fp8 / int8_sq ones).
int small_rows(WeightFormat f, int bf16_rows, int quant_rows, int fp8_rows, int int8sq_rows) {
  switch (f) {
    case WeightFormat::bf16: return std::min(bf16_rows, kGemvMaxRows);
    case WeightFormat::int8_sq: return std::min(int8sq_rows, kSkinnyMaxRows);
    case WeightFormat::fp8: return std::min(fp8_rows, kSkinnyMaxRows);
    default: return std::min(quant_rows, kSkinnyMaxRows);
  }
}
}  // namespace

Status Forward::create(const ModelDims& dims, ModelWeights weights, const ForwardLimits& limits, LtContext* lt,
                       int num_sms, std::unique_ptr<Forward>* out) {
  if (static_cast<int>(weights.layers.size()) != dims.layers)
    return invalid("Forward", "the weights do not have one entry per layer");
  for (const LayerWeights& l : weights.layers) {
    if (!l.moe.on()) continue;
    if (dims.moe.experts < 1 || dims.moe.top_k < 1 || dims.moe.intermediate < 1)
      return invalid("Forward", "a layer has experts but the dimensions give none");
    const bool w8a8 = l.moe.format == WeightFormat::fp8 || l.moe.format == WeightFormat::int8_sq;
    if (l.moe.format != WeightFormat::bf16 && l.moe.format != WeightFormat::int8_wo &&
        l.moe.format != WeightFormat::int4_awq && !w8a8)
      return invalid("Forward", "Qwen3-MoE experts run in bf16, int8_wo, int4_awq, fp8 or int8_sq only");
    const MoeW8A8Experts& q8 = l.moe.w8a8;
    if (w8a8 && (!q8.gate_up || !q8.down || !q8.gate_up_scale || !q8.down_scale || q8.fp8 != (l.moe.format == WeightFormat::fp8) ||
                 (q8.fp8 && (!q8.gate_up_input_scale || !q8.down_input_scale))))
      return invalid("Forward", "fp8 / int8_sq experts need their row scales (fp8: and input scales)");
    if (l.moe.format == WeightFormat::int8_wo && (!l.moe.gate_up_scale || !l.moe.down_scale))
      return invalid("Forward", "int8_wo experts need their per-channel scales");
    const MoeInt4Experts& q = l.moe.int4;
    if (l.moe.format == WeightFormat::int4_awq &&
        (!q.gate_up || !q.down || !q.gate_up_scale || !q.gate_up_zero || !q.down_scale || !q.down_zero))
      return invalid("Forward", "int4_awq experts need their group scales and zeros");
  }
  std::unique_ptr<Forward> f(new Forward());
  f->dims_ = dims;
  f->w_ = std::move(weights);
  f->limits_ = limits;
  f->lt_ = lt;
  f->num_sms_ = num_sms;
  // GRPST_CUDA_FUSED_DECODE=0 keeps the previous decode kernels (scripts/gpu/run.sh falls back to
  // them when the new ones fail their parity tests, so the other figures still get measured).
  f->fused_decode_ = env_int("GRPST_CUDA_FUSED_DECODE", 1) != 0;
  const int stream_bf16 = env_int("GRPST_CUDA_STREAM_BF16", -1);
  f->stream_bf16_ = stream_bf16 == 1;
  if (stream_bf16 == 0 || stream_bf16 == 2) f->bf16_stream_max_rows_ = stream_bf16 == 2 ? 1 : 0;
  f->bf16_stream_max_rows_ = env_int("GRPST_CUDA_STREAM_BF16_MAX_ROWS", f->bf16_stream_max_rows_);
  f->bf16_ws_min_rows_ = env_int("GRPST_CUDA_BF16_WS_MIN_ROWS", f->bf16_ws_min_rows_);
  // (at most the kernel's 64 rows)
  f->bf16_ws_max_rows_ = std::min(env_int("GRPST_CUDA_BF16_WS_MAX_ROWS", f->bf16_ws_max_rows_), kBf16WsMaxRows);
  f->mma_decode_ = env_int("GRPST_CUDA_MMA_DECODE", 1) != 0;
  f->mma_qkv_max_rows_ = env_int("GRPST_CUDA_MMA_QKV_MAX_ROWS", default_mma_qkv_max_rows(f->w_.layers[0].qkv.format));
  f->gemv_max_rows_ = env_int("GRPST_CUDA_GEMV_MAX_ROWS", f->gemv_max_rows_);
  f->mma_split_keys_ = env_int("GRPST_CUDA_MMA_SPLIT_KEYS", f->mma_split_keys_);
  f->moe_wide_min_tokens_ = env_int("GRPST_CUDA_MOE_WIDE_MIN_TOKENS", f->moe_wide_min_tokens_);
  f->mma_few_splits_below_ = env_int("GRPST_CUDA_MMA_FEW_SPLITS_BELOW", f->mma_few_splits_below_);
  f->staged_max_splits_ = env_int("GRPST_CUDA_STAGED_MAX_SPLITS", f->staged_max_splits_);
  f->skinny_prologue_pass_ = env_int("GRPST_CUDA_SKINNY_PROLOGUE_PASS", kDefaultSkinnyProloguePass ? 1 : 0) == 1;
  f->skinny_max_rows_ = env_int("GRPST_CUDA_SKINNY_MAX_ROWS", f->skinny_max_rows_);
  f->fp8_skinny_max_rows_ = env_int("GRPST_CUDA_FP8_SKINNY_MAX_ROWS", f->fp8_skinny_max_rows_);
  f->int8sq_skinny_max_rows_ = env_int("GRPST_CUDA_INT8SQ_SKINNY_MAX_ROWS", f->int8sq_skinny_max_rows_);
  f->fused_decode_max_rows_ = env_int("GRPST_CUDA_FUSED_DECODE_MAX_ROWS", f->fused_decode_max_rows_);
  f->wo_tiled_max_rows_ = env_int("GRPST_CUDA_WO_TILED_MAX_ROWS", f->wo_tiled_max_rows_);
  f->wo_tiled_int8_max_rows_ = env_int("GRPST_CUDA_WO_TILED_INT8_MAX_ROWS", f->wo_tiled_int8_max_rows_);
  f->int4_tiled_fallback_min_rows_ = env_int("GRPST_CUDA_INT4_TILED_FALLBACK_MIN_ROWS", f->int4_tiled_fallback_min_rows_);
  f->quantized_ = has_quantized_layers(f->w_);
  f->persistent_on_ = env_int("GRPST_CUDA_PERSISTENT", kDefaultPersistentDecode ? 1 : 0) != 0;
  f->persistent_max_ctx_ = env_int("GRPST_CUDA_PERSISTENT_MAX_CONTEXT", f->persistent_max_ctx_);
  GRPST_TRY(f->allocate());
  *out = std::move(f);
  return ok_status();
}

Status Forward::set_kv(KvCache kv) {
  if (static_cast<int>(kv.layers.size()) != dims_.layers) return invalid("Forward", "the KV cache needs one entry per layer");
  if (kv.geo.nkv != dims_.kv_heads || kv.geo.head_dim != dims_.head_dim)
    return invalid("Forward", "the KV cache geometry does not match the model");
  kv_ = std::move(kv);
  return prepare_persistent();
}

Status Forward::set_persistent_decode(bool on, int max_context) {
  persistent_on_ = on;
  persistent_max_ctx_ = max_context;
  return prepare_persistent();
}

Status Forward::prepare_persistent() {
  const ModelDims& d = dims_;
  // (not for Qwen3-MoE: the persistent step streams dense MLPs only)
  if (!persistent_on_ || kv_.layers.empty() || quantized_ || w_.lm_head.format != WeightFormat::bf16 || persistent_.layers ||
      d.moe.experts > 0 ||
      !decode_persistent_supported(d.hidden, d.intermediate, d.heads, d.kv_heads, kv_.geo))
    return ok_status();
  std::vector<PersistentLayer> host(d.layers);
  for (int l = 0; l < d.layers; ++l) {
    const LayerWeights& lw = w_.layers[l];
    if (lw.qkv_act_scale || lw.o_act_scale || lw.gate_up_act_scale || lw.down_act_scale) return ok_status();
    host[l] = PersistentLayer{lw.input_norm, lw.post_norm, lw.q_norm, lw.k_norm,
                              static_cast<const bf16*>(lw.qkv.data), static_cast<const bf16*>(lw.o.data),
                              static_cast<const bf16*>(lw.gate_up.data), static_cast<const bf16*>(lw.down.data),
                              kv_.layers[l]};
  }
  const int max_splits = decode_persistent_splits(1 << 30, d.kv_heads, num_sms_);
  const size_t layer_bytes = host.size() * sizeof(PersistentLayer);
  const size_t partial_bytes = decode_persistent_partials(d.heads, d.head_dim, max_splits) * 4;
  const size_t sync_bytes = static_cast<size_t>(decode_persistent_sync_words(d.kv_heads)) * 4;
  void* p = nullptr;
  GRPST_CUDA_CHECK("Forward persistent scratch", cudaMalloc(&p, layer_bytes + partial_bytes + sync_bytes + 512));
  allocations_.push_back(p);
  scratch_bytes_ += layer_bytes + partial_bytes + sync_bytes + 512;
  char* base = static_cast<char*>(p);
  auto* layers = reinterpret_cast<PersistentLayer*>(base);
  persistent_.partials = reinterpret_cast<float*>(base + (layer_bytes + 255) / 256 * 256);
  persistent_.sync =
      reinterpret_cast<unsigned*>(reinterpret_cast<char*>(persistent_.partials) + (partial_bytes + 255) / 256 * 256);
  GRPST_CUDA_CHECK("Forward persistent layers", cudaMemcpy(layers, host.data(), layer_bytes, cudaMemcpyHostToDevice));
  GRPST_CUDA_CHECK("Forward persistent scratch", cudaMemset(persistent_.sync, 0, sync_bytes));
  // Everything a launch reads except the step's own inputs (run_persistent fills those).
  PersistentDecode& pd = persistent_;
  pd.layers = layers;
  pd.num_layers = d.layers;
  pd.hidden = d.hidden;
  pd.intermediate = d.intermediate;
  pd.heads = d.heads;
  pd.kv_heads = d.kv_heads;
  pd.head_dim = d.head_dim;
  pd.eps = d.eps;
  pd.softmax_scale = 1.f / std::sqrt(static_cast<float>(d.head_dim));
  pd.rope = Rope{w_.inv_freq, w_.attention_scaling};
  pd.geo = kv_.geo;
  pd.h = h_;
  pd.qkv = qkv_;
  pd.attn = attn_;
  pd.act = act_;
  return ok_status();
}

Status Forward::run_persistent(const StepInput& in, const Exec& ex) {
  PersistentDecode p = persistent_;
  p.tables = in.tables;
  p.positions = in.positions;
  p.slots = in.slots;
  p.token_seq = in.token_seq;
  p.splits = decode_persistent_splits(in.max_context, dims_.kv_heads, num_sms_);
  return decode_persistent(p, num_sms_, ex);
}

Forward::~Forward() {
  for (void* p : allocations_) cudaFree(p);
}

Status Forward::allocate() {
  const size_t T = limits_.max_tokens, L = limits_.max_logits;
  const size_t H = dims_.hidden, I = dims_.intermediate, hd = dims_.head_dim;
  const size_t qkv_n = (dims_.heads + 2 * dims_.kv_heads) * hd, attn_n = dims_.heads * hd;
  const size_t max_k = std::max({H, I, attn_n});
  const size_t max_n = std::max({qkv_n, 2 * I, H});
  size_t max_weight = 0;  // elements of the largest layer weight (the dequantization scratch)
  for (const auto& l : w_.layers)
    for (const Weight* w : {&l.qkv, &l.o, &l.gate_up, &l.down}) max_weight = std::max(max_weight, size_t(w->N) * w->K);
  auto alloc = [&](size_t bytes, void** p) -> Status {
    if (bytes == 0) return ok_status();
    GRPST_CUDA_CHECK("Forward scratch", cudaMalloc(p, bytes));
    allocations_.push_back(*p);
    scratch_bytes_ += bytes;
    return ok_status();
  };
  GRPST_TRY(alloc(T * H * 2, reinterpret_cast<void**>(&h_)));
  GRPST_TRY(alloc(T * qkv_n * 2, reinterpret_cast<void**>(&qkv_)));
  GRPST_TRY(alloc(T * attn_n * 2, reinterpret_cast<void**>(&q_)));
  GRPST_TRY(alloc(T * attn_n * 2, reinterpret_cast<void**>(&attn_)));
  GRPST_TRY(alloc(T * I * 2, reinterpret_cast<void**>(&act_)));
  GRPST_TRY(alloc(T * max_k * 2, reinterpret_cast<void**>(&xn_)));
  GRPST_TRY(alloc(T * 2 * I * 2, reinterpret_cast<void**>(&tmp_)));
  GRPST_TRY(alloc(L * H * 2, reinterpret_cast<void**>(&gathered_)));
  const int split_rows = std::min<int>(limits_.max_tokens, 64);
  const size_t ws_bytes = attention_decode_workspace(split_rows, dims_.heads, dims_.head_dim, limits_.max_decode_splits) * 4;
  GRPST_TRY(alloc(ws_bytes, reinterpret_cast<void**>(&attn_ws_)));
  if (attn_ws_) GRPST_CUDA_CHECK("Forward scratch", cudaMemset(attn_ws_, 0, ws_bytes));  // merge counters start at 0
  if (has_format(w_, WeightFormat::fp8) || has_format(w_, WeightFormat::int8_sq))
    GRPST_TRY(alloc(T * max_k, reinterpret_cast<void**>(&xq_)));
  if (has_format(w_, WeightFormat::int8_sq)) {
    GRPST_TRY(alloc(T * 4, reinterpret_cast<void**>(&xs_)));
    // A quantized LM head's products for the rows that take logits, when that is more.
    acc_elems_ = std::max(T * max_n, w_.lm_head.format == WeightFormat::int8_sq ? L * w_.lm_head.N : size_t(0));
    GRPST_TRY(alloc(acc_elems_ * 4, reinterpret_cast<void**>(&acc_)));
  }
  const bool weight_only = has_format(w_, WeightFormat::int8_wo) || has_format(w_, WeightFormat::int4_awq);
  if (weight_only) {
    GRPST_TRY(alloc(max_weight * 2, reinterpret_cast<void**>(&wtmp_)));
    wtmp_elems_ = max_weight;
  }
  if (weight_only || (bf16_ws_min_rows_ > 0 && has_format(w_, WeightFormat::bf16))) {
    // linear_wo_tiled / linear_bf16_ws: partial sums for 4 K slices of the widest layer at 64
    // tokens (more slices for narrower ones), and a zeroed counter per column of blocks of the
    // widest weight (LM head too).
    split_.partial_floats = static_cast<size_t>(kWoTiledMaxRows) * ((max_n + 255) / 256 * 256) * 4;
    GRPST_TRY(alloc(split_.partial_floats * 4, reinterpret_cast<void**>(&split_.partial)));
    split_.counter_count = wo_tiled_counters(static_cast<int>(std::max<size_t>(max_n, w_.lm_head.N)));
    GRPST_TRY(alloc(static_cast<size_t>(split_.counter_count) * 4, reinterpret_cast<void**>(&split_.counters)));
    GRPST_CUDA_CHECK("Forward scratch", cudaMemset(split_.counters, 0, static_cast<size_t>(split_.counter_count) * 4));
  }
  return allocate_moe();
}

Status Forward::plain_input(const LinearIn& in, int M, int K, const Exec& ex, const bf16** x) {
  *x = in.x;
  if (!in.norm_w && !in.act_scale) return ok_status();
  GRPST_TRY(linear_prologue(in, xn_, M, K, ex));
  *x = xn_;
  return ok_status();
}

Status Forward::skinny(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  if (!skinny_prologue_pass_) return linear_skinny(in, w, out, M, ex);
  // Each skinny block stages all M rows of x: normalize / scale them once here instead of in
  // every block (which also reads x twice for the RMSNorm statistics).
  LinearIn plain;
  GRPST_TRY(plain_input(in, M, w.K, ex, &plain.x));
  return linear_skinny(plain, w, out, M, ex);
}

Status Forward::skinny_rows(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  const size_t row_bytes = static_cast<size_t>(out.epi == Epilogue::swiglu ? w.N / 2 : w.N) * (out.f32_out ? 4 : 2);
  for (int m0 = 0; m0 < M; m0 += kSkinnyMaxRows) {
    LinearIn part = in;
    part.x = in.x + static_cast<size_t>(m0) * w.K;
    LinearOut po = out;
    po.y = static_cast<char*>(out.y) + m0 * row_bytes;
    GRPST_TRY(skinny(part, w, po, std::min(kSkinnyMaxRows, M - m0), ex));
  }
  return ok_status();
}

Status Forward::sliced_dequant_gemm(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  const int rows = static_cast<int>(wtmp_elems_ / static_cast<size_t>(w.K)) / 16 * 16;
  if (rows < 16 || out.epi != Epilogue::store) return skinny_rows(in, w, out, M, ex);
  const bf16* x;
  GRPST_TRY(plain_input(in, M, w.K, ex, &x));
  const size_t elem = out.f32_out ? 4 : 2;
  for (int n0 = 0; n0 < w.N; n0 += rows) {
    Weight slice;
    GRPST_TRY(weight_rows(w, n0, std::min(rows, w.N - n0), &slice));
    GRPST_TRY(dequant_weight(slice, wtmp_, ex));
    GRPST_TRY(gemm_bf16(lt_, x, wtmp_, static_cast<char*>(out.y) + n0 * elem, out.f32_out, false, M, slice.N, w.K, ex,
                        w.N));
  }
  return ok_status();
}

Status Forward::linear(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  // Quantized weights take the decode kernels up to their crossover (small_rows), then int4 /
  // int8_wo the tiled weight-only GEMM up to its rows (set_wo_tiled_max_rows), cuBLASLt beyond;
  // bf16 ones the streaming GEMV as set_stream_bf16 / set_bf16_stream_max_rows say, then the GEMV
  // up to its rows.
  const bool is_bf16 = w.format == WeightFormat::bf16;
  const int small = small_rows(w.format, gemv_max_rows_, skinny_max_rows_, fp8_skinny_max_rows_, int8sq_skinny_max_rows_);
  const bool stream_rows = is_bf16 ? stream_bf16_ || M <= bf16_stream_max_rows_ : M <= small;
  if (fused_decode_ && stream_rows && M <= kStreamMaxRows && linear_stream_supported(w, M))
    return linear_stream(in, w, out, M, ex);
  // On request (set_narrow_lt), a long, narrow bf16 matrix without a fused prologue (down_proj)
  // through cuBLASLt, which splits K across blocks; the residual add becomes its beta = 1.
  const bool narrow = narrow_lt_ && is_bf16 && !in.norm_w && !in.act_scale &&
                      out.epi == Epilogue::residual_add && w.K > 2 * w.N;
  // int4 rows the streaming GEMV did not take: the tiled kernel from its fallback rows (not with
  // the previous decode kernels, fused_decode_ off, which keep the skinny one)
  const bool tiled_instead = fused_decode_ && w.format == WeightFormat::int4_awq && M >= int4_tiled_fallback_min_rows_ &&
                             split_.counters && linear_wo_tiled_supported(w);
  if (M <= small && !narrow && !tiled_instead) {
    if (is_bf16)
      return gemv_bf16(in, static_cast<const bf16*>(w.data), out, M, w.N, w.K, ex);
    return skinny(in, w, out, M, ex);
  }
  // bf16 at bf16_ws_min_rows_-bf16_ws_max_rows_ rows: the warp-specialized wgmma GEMM, whose
  // epilogue takes the SwiGLU and the residual add; beyond, up to its 64 rows, the projections its
  // plan gives the narrow kernel (none unless GRPST_CUDA_BF16_WS_NARROW is set: qkv with 1).
  const bool ws_rows = M >= bf16_ws_min_rows_ && M <= bf16_ws_max_rows_;
  const bool ws_narrow = M > bf16_ws_max_rows_ && M <= kBf16WsMaxRows;
  if (is_bf16 && bf16_ws_min_rows_ > 0 && (ws_rows || ws_narrow) && split_.counters && linear_bf16_ws_supported(w) &&
      (ws_rows || linear_bf16_ws_narrow(w, num_sms_))) {
    const bf16* x;
    GRPST_TRY(plain_input(in, M, w.K, ex, &x));
    return linear_bf16_ws(x, w, out, M, split_, num_sms_, ex);
  }
  if (M > limits_.max_tokens) return invalid("linear", "more rows than the scratch buffers hold");
  // int8_wo layers at 33-64 rows are faster dequantized for cuBLASLt; a weight larger than that
  // path's scratch (a quantized LM head) is not: there the alternative is dequantizing in slices.
  const bool sliced = static_cast<size_t>(w.N) * w.K > wtmp_elems_;
  const int tiled_rows = w.format == WeightFormat::int8_wo && !sliced ? wo_tiled_int8_max_rows_ : wo_tiled_max_rows_;
  if (M <= std::min(tiled_rows, kWoTiledMaxRows) && split_.counters && linear_wo_tiled_supported(w)) {
    const bf16* x;
    GRPST_TRY(plain_input(in, M, w.K, ex, &x));
    return linear_wo_tiled(x, w, out, M, split_, num_sms_, ex);
  }
  const bool swiglu = out.epi == Epilogue::swiglu;
  const bool accumulate = out.epi == Epilogue::residual_add;
  // Weights larger than the GEMM path's scratch (a quantized LM head: the scratch is sized for the
  // layers): int8_wo / int4 dequantized in slices; int8_sq past the rows acc_ holds for the head
  // through the skinny kernel, 64 rows at a time.
  if ((w.format == WeightFormat::int8_wo || w.format == WeightFormat::int4_awq) && sliced)
    return sliced_dequant_gemm(in, w, out, M, ex);
  if (w.format == WeightFormat::int8_sq && static_cast<size_t>(M) * w.N > acc_elems_)
    return skinny_rows(in, w, out, M, ex);
  if (w.format == WeightFormat::int8_sq) {
    GRPST_TRY(quantize_int8_rows(in, reinterpret_cast<int8_t*>(xq_), xs_, M, w.K, ex));
    GRPST_TRY(gemm_int8(lt_, reinterpret_cast<const int8_t*>(xq_), static_cast<const int8_t*>(w.data), acc_, M,
                        w.N, w.K, ex));
    return dequant_int32(acc_, xs_, w.channel_scale, out, M, w.N, ex);
  }
  void* y = swiglu ? static_cast<void*>(tmp_) : out.y;
  if (w.format == WeightFormat::fp8) {
    // fp32 out: the logits of a quantized LM head.
    const bool f32 = out.f32_out && !swiglu;
    GRPST_TRY(quantize_fp8(in, w.x_scale, xq_, M, w.K, ex));
    const Status st = gemm_fp8(lt_, xq_, static_cast<const uint8_t*>(w.data), w.x_scale, w.w_scale, y, accumulate,
                               M, w.N, w.K, ex, f32);
    if (!st.ok()) {
      // cuBLASLt has no fp8 algorithm for this shape: the skinny kernel, 64 rows at a time.
      if (fp8_gemm_refusal_.empty()) fp8_gemm_refusal_ = st.message() + " (M=" + std::to_string(M) + ")";
      LinearOut po;
      po.y = y;
      po.f32_out = f32;
      po.epi = accumulate ? Epilogue::residual_add : Epilogue::store;
      GRPST_TRY(skinny_rows(in, w, po, M, ex));
    }
  } else {
    const bf16* x;
    GRPST_TRY(plain_input(in, M, w.K, ex, &x));
    const bf16* wb = static_cast<const bf16*>(w.data);
    if (w.format != WeightFormat::bf16) {
      GRPST_TRY(dequant_weight(w, wtmp_, ex));
      wb = wtmp_;
    }
    GRPST_TRY(gemm_bf16(lt_, x, wb, y, out.f32_out && !swiglu, accumulate, M, w.N, w.K, ex));
  }
  if (swiglu) return grpst::cuda::swiglu(tmp_, static_cast<bf16*>(out.y), M, w.N / 2, ex);
  return ok_status();
}

Status Forward::run(const StepInput& in, float* logits, const Exec& ex) {
  const int T = in.num_tokens, R = in.num_decode;
  if (T <= 0) return ok_status();
  if (T > limits_.max_tokens) return invalid("Forward::run", "batch larger than max_tokens");
  if (kv_.layers.empty()) return invalid("Forward::run", "no KV cache (set_kv)");
  if (in.num_logits > limits_.max_logits && in.logit_rows)
    return invalid("Forward::run", "more logits rows than max_logits");
  const ModelDims& d = dims_;
  // Rows with LoRA adapters: each projection's update after it, gate_up stored before its SwiGLU
  // (the update is added to the gate and up values), no persistent step.
  const bool lora = in.lora.rows != nullptr;
  if (lora && (tp_ || in.lora.t == nullptr)) return invalid("Forward::run", "LoRA needs one rank and its scratch");
  if (lora && d.moe.experts > 0) return invalid("Forward::run", "LoRA adapters do not describe a Qwen3-MoE model's experts");
  if (tp_ && d.moe.experts > 0) return invalid("Forward::run", "Qwen3-MoE layers run on one rank");
  const float softmax_scale = 1.f / std::sqrt(static_cast<float>(d.head_dim));
  const Rope rope{w_.inv_freq, w_.attention_scaling};
  const size_t qkv_n = static_cast<size_t>(d.heads + 2 * d.kv_heads) * d.head_dim;
  const size_t attn_n = static_cast<size_t>(d.heads) * d.head_dim;
  // The streaming decode path (weight-streaming GEMV at every decode batch) serves quantized
  // weights; bf16 models take it at one row (see linear()). Both take the separate q/k norm +
  // RoPE kernel and the tensor-core decode attention for bf16 caches (2.5x the register-streaming
  // kernel at 64 x 1,536 keys), the register-streaming / staged kernel otherwise; the fused
  // decode attention up to fused_decode_max_rows_ decode rows (0 by default).
  const bool streaming = fused_decode_ && (quantized_ || stream_bf16_);
  const bool fused_rows = streaming && R > 0 && R <= fused_decode_max_rows_;
  // Split-K of the decode attention: about two blocks per SM, one for the tensor-core kernel at
  // contexts up to mma_one_block_max_ctx_ (measured, kMmaOneBlockPerSmMaxContext).
  const bool mma = !fused_rows && mma_decode_ && attention_decode_mma_supported(kv_.geo, d.heads);
  const int blocks_per_sm = mma && in.max_context <= mma_one_block_max_ctx_ ? 1 : 2;
  int splits = 1;
  if (R > 0 && R <= 64)
    splits = std::min(limits_.max_decode_splits,
                      attention_decode_splits(R, d.kv_heads, in.max_context, num_sms_, blocks_per_sm));
  // Short contexts in fewer splits than filling the GPU asks for (kMmaMinSplits): fewer partial
  // results to merge, and each block's four warps busy.
  if (mma && mma_split_keys_ > 0)
    splits = std::min(splits, std::max({1, mma_min_splits_, in.max_context / mma_split_keys_}));
  // And one sequence below mma_few_splits_below_ keys in at most mma_few_splits_ (measured at one).
  if (mma && R == 1 && in.max_context < mma_few_splits_below_)
    splits = std::min(splits, std::max(1, mma_few_splits_));
  // The staged kernel (the streaming path's fp8 / int8 caches) in at most as many splits as one
  // cluster merges, up to staged_cap_max_ctx_ keys.
  if (!mma && streaming && staged_max_splits_ > 0 && in.max_context <= staged_cap_max_ctx_)
    splits = std::min(splits, staged_max_splits_);
  const bool fused = fused_rows && attention_decode_fused_supported(kv_.geo, d.heads, R, splits);
  const bool mma_any = mma_decode_ && attention_decode_mma_supported(kv_.geo, d.heads);
  // Up to mma_qkv_max_rows_ decode rows (by the QKV weights' format), the tensor-core decode
  // attention normalises and rotates its own q / k (one kernel fewer per layer; default_mma_qkv_max_rows).
  const bool mma_qkv = R > 0 && R <= mma_qkv_max_rows_ && !fused && mma_any;

  if (tp_) GRPST_TRY(tp_->embed(in.tokens, w_.embed, h_, T, d.hidden, ex));
  else GRPST_TRY(embedding(in.tokens, w_.embed, h_, T, d.hidden, d.vocab, ex));
  // One sequence's decode step of a bf16 model: every layer in one persistent launch.
  last_persistent_ = persistent_on_ && persistent_.layers && !tp_ && !lora && T == 1 && R == 1 && in.prefill.num_seqs == 0 &&
                     in.max_context <= persistent_max_ctx_;
  if (last_persistent_) GRPST_TRY(run_persistent(in, ex));
  // Tensor parallel: ranks other than 0 store their o_proj / down_proj partial sums in place of
  // the residual stream, and the all-reduce after the linear restores it (cuda_tp.h).
  const Epilogue residual = !tp_ || tp_->keeps_residual() ? Epilogue::residual_add : Epilogue::store;
  // o_proj / down_proj load the residual before their wait on the previous kernel (not with tensor
  // parallelism, whose all-reduce writes it); GRPST_CUDA_RESIDUAL_SETTLED=0: in their epilogue.
  const bool residual_settled = !tp_ && env_int("GRPST_CUDA_RESIDUAL_SETTLED", 1) != 0;
  const int q_n = d.heads * d.head_dim, kv_n = d.kv_heads * d.head_dim;
  const LoraSite qkv_site{kLoraQ, 3, d.hidden, {q_n, kv_n, kv_n}, {0, q_n, q_n + kv_n}, 1};
  const LoraSite o_site{kLoraO, 1, q_n, {d.hidden, 0, 0}, {0, 0, 0}, 1};
  const LoraSite down_site{kLoraDown, 1, d.intermediate, {d.hidden, 0, 0}, {0, 0, 0}, 1};
  for (int l = last_persistent_ ? d.layers : 0; l < d.layers; ++l) {  // (the persistent launch ran them)
    const LayerWeights& lw = w_.layers[l];
    const KvLayer& kv = kv_.layers[l];
    if (taps_) GRPST_TRY(taps_->linear_input(l, 0, h_, T, d.hidden, lw.input_norm, d.eps, ex));
    LinearIn a;
    a.x = h_;
    a.norm_w = lw.input_norm;
    a.eps = d.eps;
    a.act_scale = lw.qkv_act_scale;
    LinearOut o;
    o.y = qkv_;
    GRPST_TRY(linear(a, lw.qkv, o, T, ex));
    if (lora) GRPST_TRY(lora_add(in.lora, l, qkv_site, h_, lw.input_norm, d.eps, qkv_, static_cast<int64_t>(qkv_n), T, ex));
    if (taps_) GRPST_TRY(taps_->kv(l, qkv_, in.positions, lw.q_norm, lw.k_norm, d.eps, rope, T, ex));
    // Decode rows: norm + RoPE + KV write inside the attention kernel; the other rows here.
    const int first = fused || mma_qkv ? R : 0;
    if (T > first)
      GRPST_TRY(qk_norm_rope_kv(qkv_ + static_cast<size_t>(first) * qkv_n, in.positions + first, in.slots + first,
                                lw.q_norm, lw.k_norm, d.eps, rope, T - first, d.heads, kv_.geo, kv,
                                q_ + static_cast<size_t>(first) * attn_n, ex));
    if (R > 0 && fused)
      GRPST_TRY(attention_decode_fused(qkv_, in.positions, in.slots, in.token_seq, lw.q_norm, lw.k_norm, d.eps, rope,
                                       in.tables, R, d.heads, kv_.geo, kv, softmax_scale, splits, attn_ws_, attn_, ex));
    else if (mma_qkv)
      GRPST_TRY(attention_decode_mma_qkv(qkv_, in.positions, in.slots, in.token_seq, lw.q_norm, lw.k_norm, d.eps, rope,
                                         in.tables, R, d.heads, kv_.geo, kv, softmax_scale, splits, attn_ws_, attn_, ex));
    else if (R > 0 && mma_any)
      GRPST_TRY(attention_decode_mma(q_, in.positions, 1, in.token_seq, in.tables, R, d.heads, kv_.geo, kv,
                                     softmax_scale, splits, attn_ws_, attn_, ex));
    else if (R > 0)
      GRPST_TRY(attention_decode(q_, in.positions, 1, in.token_seq, in.tables, R, d.heads, kv_.geo, kv,
                                 softmax_scale, splits, attn_ws_, attn_, ex, streaming));
    if (in.prefill.num_seqs > 0) {
      PrefillBatch pb = in.prefill;
      pb.num_tokens = T - R;
      pb.first_row = R;
      pb.token_pos = in.positions + R;
      pb.token_seq = in.token_seq + R;
      GRPST_TRY(attention_prefill(q_, pb, in.tables, d.heads, kv_.geo, kv, softmax_scale, attn_, ex));
    }

    if (taps_) GRPST_TRY(taps_->linear_input(l, 1, attn_, T, static_cast<int>(attn_n), nullptr, 0.f, ex));
    a = LinearIn();
    a.x = attn_;
    a.act_scale = lw.o_act_scale;
    o.y = h_;
    o.epi = residual;
    // h_ was last written before the QKV projection (the previous layer's down_proj or all-reduce,
    // or the embedding), and before gate_up for down_proj below: two kernels back at least.
    o.residual_settled = residual_settled;
    GRPST_TRY(linear(a, lw.o, o, T, ex));
    if (lora) GRPST_TRY(lora_add(in.lora, l, o_site, attn_, nullptr, 0.f, h_, d.hidden, T, ex));
    if (tp_) GRPST_TRY(tp_->reduce(h_, T, d.hidden, ex));

    if (taps_) GRPST_TRY(taps_->linear_input(l, 2, h_, T, d.hidden, lw.post_norm, d.eps, ex));
    if (lw.moe.on()) {  // the experts in place of gate_up / down (no DownIn point, as on the CPU)
      GRPST_TRY(moe_mlp(l, lw, T, ex));
      continue;
    }
    a = LinearIn();
    a.x = h_;
    a.norm_w = lw.post_norm;
    a.eps = d.eps;
    a.act_scale = lw.gate_up_act_scale;
    o.y = lora ? tmp_ : act_;
    o.epi = lora ? Epilogue::store : Epilogue::swiglu;
    o.residual_settled = false;
    GRPST_TRY(linear(a, lw.gate_up, o, T, ex));
    if (lora) GRPST_TRY(lora_add_swiglu(in.lora, l, h_, lw.post_norm, d.eps, d.hidden, tmp_, act_, d.intermediate, T, ex));

    if (taps_) GRPST_TRY(taps_->linear_input(l, 3, act_, T, d.intermediate, nullptr, 0.f, ex));
    a = LinearIn();
    a.x = act_;
    a.act_scale = lw.down_act_scale;
    o.y = h_;
    o.epi = residual;
    o.residual_settled = residual_settled;
    GRPST_TRY(linear(a, lw.down, o, T, ex));
    if (lora) GRPST_TRY(lora_add(in.lora, l, down_site, act_, nullptr, 0.f, h_, d.hidden, T, ex));
    if (tp_) GRPST_TRY(tp_->reduce(h_, T, d.hidden, ex));
  }

  if (taps_) GRPST_TRY(taps_->linear_input(d.layers, 4, h_, T, d.hidden, w_.final_norm, d.eps, ex));
  // No rows want logits (a calibration pass): a single rank skips its head.
  if (in.logit_rows && in.num_logits == 0 && !tp_) return ok_status();
  LinearIn a;
  a.norm_w = w_.final_norm;
  a.eps = d.eps;
  LinearOut o;
  o.y = tp_ ? tp_->local_logits() : logits;
  o.f32_out = true;
  int L = T;
  if (in.logit_rows) {
    L = in.num_logits;
    GRPST_TRY(embedding(in.logit_rows, h_, gathered_, L, d.hidden, T, ex));
    a.x = gathered_;
  } else {
    a.x = h_;
  }
  if (!tp_) return linear(a, w_.lm_head, o, L, ex);
  GRPST_TRY(linear(a, w_.lm_head, o, L, ex));
  return tp_->gather_logits(logits, L, ex);
}

Status Forward::final_norm_rows(const int32_t* rows, int n, bf16* y, const Exec& ex) {
  const ModelDims& d = dims_;
  for (int i = 0; i < n; ++i)
    GRPST_TRY(rmsnorm(h_ + size_t(rows[i]) * d.hidden, nullptr, nullptr, w_.final_norm, y + size_t(i) * d.hidden, 1, d.hidden, d.eps, ex));
  return ok_status();
}

}  // namespace grpst::cuda
