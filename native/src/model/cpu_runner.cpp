// Qwen3 forward pass on the CPU: activations fp32, weights bf16 (or a quantized format), fp32
// accumulation. One GEMM per projection over all T tokens of the step; attention per token row
// over its sequence's paged KV. Every per-token value is computed independently of the other
// tokens in the step, so a sequence's outputs do not depend on what it is batched with.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "grpst/cpu_kernels.h"
#include "grpst/kv_quant.h"
#include "grpst/linear.h"
#include "grpst/lora.h"
#include "grpst/model_runner.h"
#include "grpst/tensor_store.h"
#include "grpst/thread_pool.h"
#include "model/moe_mlp.h"
#include "model/qwen3_weights.h"

namespace grpst {

namespace {

/**
 * Wall time per phase of the forward pass, on when GRPST_PROFILE is set: printed to stderr
 * when the runner is destroyed. A diagnostic for kernel work, off in normal runs.
 */
class PhaseProfile {
 public:
  enum Phase { Embed, Norms, Qkv, RopeKv, Attention, OProj, GateUp, Silu, Down, LmHead, kCount };
  PhaseProfile() : on_(std::getenv("GRPST_PROFILE") != nullptr) {}
  ~PhaseProfile() {
    if (!on_ || steps_ == 0) return;
    static const char* names[kCount] = {"embed", "norms+residual", "q/k/v proj", "qk-norm+rope+kv", "attention",
                                        "o proj", "gate/up proj", "silu*up", "down proj", "lm_head"};
    double total = 0;
    for (double t : total_) total += t;
    std::fprintf(stderr, "grpst profile: %llu steps, %llu tokens, %.3f s\n", (unsigned long long)steps_,
                 (unsigned long long)tokens_, total);
    for (int i = 0; i < kCount; i++)
      std::fprintf(stderr, "  %-18s %8.3f s  %5.1f%%\n", names[i], total_[i], 100 * total_[i] / (total > 0 ? total : 1));
  }
  bool on() const { return on_; }
  void step(int tokens) {
    steps_++;
    tokens_ += uint64_t(tokens);
    last_ = Clock::now();
  }
  /** Charges the time since the previous mark to `p`. */
  void mark(Phase p) {
    if (!on_) return;
    auto now = Clock::now();
    total_[p] += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool on_;
  uint64_t steps_ = 0, tokens_ = 0;
  double total_[kCount] = {};
  Clock::time_point last_;
};

/** An fp32 activation buffer, 64-byte aligned. */
class Activations {
 public:
  void resize(size_t n) { buf_ = std::make_unique<AlignedBuffer>(n * sizeof(float)); }
  float* get() const { return static_cast<float*>(buf_->ptr); }

 private:
  std::unique_ptr<AlignedBuffer> buf_;
};

KvElem kv_elem(KvDType d) {
  switch (d) {
    case KvDType::BF16: return KvElem::BF16;
    case KvDType::FP8: return KvElem::FP8;
    case KvDType::INT8: return KvElem::INT8;
    default: return KvElem::F32;
  }
}

// Query rows of one sequence that one attention call handles together (they share K/V loads).
constexpr int kAttnRows = 16;

class CpuRunner final : public ModelRunner {
 public:
  CpuRunner(const ModelConfig& cfg, std::shared_ptr<TensorStore> store, const CpuRunnerOptions& opts)
      : full_(cfg),
        cfg_(opts.tp.on() ? shard_config(cfg, opts.tp.shard) : cfg),
        store_(std::move(store)),
        opts_(opts),
        k_(cpu_kernels(choose_cpu_level(opts.kernel_level))),
        pool_(opts.threads) {
    if (cfg.moe.on() && opts.tp.on())
      throw Error("tensor parallelism is not available for Qwen3-MoE engines yet; load the engine without tp_size");
    w_ = load_qwen3_weights(*store_, cfg_, weight_format_for_scheme(opts.quantization), opts.cancel);
    const size_t T = size_t(std::max(1, opts_.max_tokens));
    const size_t H = cfg_.hidden_size, I = cfg_.intermediate_size;
    x_.resize(T * H);
    h_.resize(T * std::max(H, size_t(cfg_.q_dim())));
    q_.resize(T * cfg_.q_dim());
    kx_.resize(T * cfg_.kv_dim());
    vx_.resize(T * cfg_.kv_dim());
    attn_.resize(T * cfg_.q_dim());
    gate_.resize(T * I);
    up_.resize(T * I);
    final_.resize(size_t(std::max(1, opts_.max_logit_rows)) * H);
    rope_.resize(T * cfg_.head_dim);  // [T, head_dim/2 cos | head_dim/2 sin]
    for (int t = 0; t < pool_.size(); t++)
      scratch_.push_back(std::make_unique<AlignedBuffer>(
          attention_scratch_floats(std::max(1, opts_.max_seq_len) + kAttnRows) * sizeof(float)));
    slots_.resize(T);
    positions_.resize(T);
    moe_.reserve(cfg_, int(T));
  }

  const ModelConfig& config() const override { return full_; }
  std::string device() const override { return "cpu"; }
  std::string kernels() const override { return k_.name; }
  int threads() const override { return pool_.size(); }
  int64_t weight_bytes_per_step() const override { return w_.decode_bytes(cfg_); }
  // A rank's shard would need the adapters' matrices sharded alike: whole models only. A MoE
  // model's MLP is its experts, which adapters of gate/up/down do not describe.
  bool supports_lora() const override { return !opts_.tp.on() && !cfg_.moe.on(); }

  size_t kv_bytes_per_token(KvDType dtype) const override {
    return size_t(cfg_.num_layers) * 2 * cfg_.kv_dim() * kv_dtype_size(dtype);
  }

  void allocate_kv(const KvCacheSpec& spec) override {
    if (kv_dtype_quantized(spec.dtype) &&
        (int(spec.k_scales.size()) != cfg_.num_layers || int(spec.v_scales.size()) != cfg_.num_layers))
      throw Error("a quantized KV cache needs one k and one v scale per layer");
    kv_ = spec;
    const size_t per_layer = size_t(spec.num_blocks) * spec.block_size * cfg_.kv_dim() * kv_dtype_size(spec.dtype);
    k_pool_.clear();
    v_pool_.clear();
    for (int l = 0; l < cfg_.num_layers; l++) {
      // Large allocations are mapped lazily by the OS: unused blocks cost no memory.
      k_pool_.push_back(std::make_unique<AlignedBuffer>(per_layer));
      v_pool_.push_back(std::make_unique<AlignedBuffer>(per_layer));
    }
  }

  void forward(const StepBatch& b, float* logits) override;
  void final_hidden(const std::vector<int32_t>& rows, float* out) override;

 private:
  void prepare_rows(const StepBatch& b);
  void attention_layer(const StepBatch& b, int layer);
  void qk_norm_rope_store(int T, int layer);
  void embed(const StepBatch& b, float* x);
  void lm_head(const StepBatch& b, const float* fin, float* logits);
  // Calibration: the final norm of every token (what a quantized lm_head reads), not only of the
  // rows that ask for logits.
  void observe_head_input(int T);
  /** y += each adapted row's LoRA update of projection `t` at layer `layer` (x: its input). */
  void add_lora(int layer, LoraTarget t, const float* x, int64_t ldx, float* y, int64_t ldy);
  /** Tensor parallel: the sum over ranks of each rank's partial [T, H] (o_proj / down_proj). */
  void reduce_partials(float* y, int T) {
    if (opts_.tp.on()) opts_.tp.comm->all_reduce_sum(y, size_t(T) * cfg_.hidden_size, CollDType::F32, nullptr);
  }

  ModelConfig full_;  // the whole model (what config() reports: the vocabulary of the logits)
  ModelConfig cfg_;   // what this runner's weights hold: full_, or one rank's shard of it
  std::shared_ptr<TensorStore> store_;
  CpuRunnerOptions opts_;
  const CpuKernels& k_;
  ThreadPool pool_;
  Qwen3Weights w_;
  KvCacheSpec kv_;
  // Per layer: keys [blocks, kv_heads, head_dim, block_size], values [blocks, kv_heads, block_size, head_dim].
  std::vector<std::unique_ptr<AlignedBuffer>> k_pool_, v_pool_;
  Activations x_, h_, q_, kx_, vx_, attn_, gate_, up_, final_, rope_;
  MoeMlp moe_;  // sparse layers' experts (Qwen3-MoE)
  int final_rows_ = 0;  // rows of final_ the last forward wrote (its logit rows)
  std::vector<std::unique_ptr<AlignedBuffer>> scratch_;  // per thread: attention scores
  struct AttnItem {
    int slice, head, row0, row1;
  };
  std::vector<AttnItem> attn_items_;  // this step's attention work
  struct LoraGroup {
    const LoraAdapter* adapter;
    std::vector<int32_t> rows;  // the step's rows that run with it
  };
  std::vector<LoraGroup> lora_groups_;  // this step's adapters, each with its rows
  std::vector<float> lora_tmp_;         // lora_add's scratch (lora_scratch_floats)
  std::vector<int64_t> slots_;               // per row: block * block_size + offset in the pool
  std::vector<int32_t> positions_;
  std::vector<float> tp_logits_, tp_gathered_;  // tensor parallel: [R, V/N] of this rank, [N, R, V/N]
  PhaseProfile prof_;
};

void CpuRunner::prepare_rows(const StepBatch& b) {
  const int T = b.num_tokens();
  if (T > opts_.max_tokens) throw Error("step of " + std::to_string(T) + " tokens exceeds max_tokens");
  if (int(b.logit_rows.size()) > opts_.max_logit_rows) throw Error("step asks for too many logit rows");
  if (k_pool_.empty()) throw Error("KV cache not allocated");
  for (int s = 0; s < int(b.seqs.size()); s++) {
    const SeqSlice& sl = b.seqs[s];
    if (sl.start_pos + sl.num_tokens > opts_.max_seq_len) throw Error("sequence longer than max_seq_len");
    if ((sl.start_pos + sl.num_tokens + kv_.block_size - 1) / kv_.block_size > sl.num_blocks)
      throw Error("sequence has too few KV blocks for its context");
    for (int i = 0; i < sl.num_tokens; i++) {
      const int row = sl.first_row + i, pos = sl.start_pos + i;
      positions_[row] = pos;
      const int32_t block = sl.block_table[pos / kv_.block_size];
      if (block < 0 || block >= kv_.num_blocks) throw Error("KV block id out of range");
      slots_[row] = int64_t(block) * kv_.block_size + pos % kv_.block_size;
    }
  }
  // Rows by LoRA adapter (most steps have none).
  lora_groups_.clear();
  for (const SeqSlice& sl : b.seqs) {
    if (sl.lora == nullptr) continue;
    if (!supports_lora()) throw Error("this runner does not apply LoRA adapters");
    if (!(sl.lora->shape == LoraShape::of(cfg_))) throw Error("a LoRA adapter made for another model's shape");
    auto g = std::find_if(lora_groups_.begin(), lora_groups_.end(), [&](const LoraGroup& x) { return x.adapter == sl.lora; });
    if (g == lora_groups_.end()) g = lora_groups_.insert(lora_groups_.end(), LoraGroup{sl.lora, {}});
    for (int i = 0; i < sl.num_tokens; i++) g->rows.push_back(sl.first_row + i);
  }
  // Attention work: up to kAttnRows consecutive rows of one sequence, per KV head.
  attn_items_.clear();
  for (int s = 0; s < int(b.seqs.size()); s++) {
    const SeqSlice& sl = b.seqs[s];
    for (int r0 = sl.first_row; r0 < sl.first_row + sl.num_tokens; r0 += kAttnRows)
      for (int h = 0; h < cfg_.num_kv_heads; h++)
        attn_items_.push_back({s, h, r0, std::min(sl.first_row + sl.num_tokens, r0 + kAttnRows)});
  }
  for (int r = 0; r < T; r++) {
    if (b.tokens[r] < 0 || b.tokens[r] >= full_.vocab_size)
      throw Error("token id " + std::to_string(b.tokens[r]) + " is outside the vocabulary (size " +
                  std::to_string(full_.vocab_size) + ")");
  }
  // cos/sin tables per row, as transformers builds them: angle = pos * inv_freq in fp32.
  const int half = cfg_.head_dim / 2;
  float* rope = rope_.get();
  for (int r = 0; r < T; r++) {
    for (int i = 0; i < half; i++) {
      const float angle = float(positions_[r]) * cfg_.rope_inv_freq[i];
      rope[size_t(r) * cfg_.head_dim + i] = float(std::cos(double(angle))) * cfg_.rope_attention_scaling;
      rope[size_t(r) * cfg_.head_dim + half + i] = float(std::sin(double(angle))) * cfg_.rope_attention_scaling;
    }
  }
}

/** Per-head RMSNorm of q and k, rotary embedding, then K/V written into their cache slots. */
void CpuRunner::qk_norm_rope_store(int T, int layer) {
  const Qwen3Layer& L = w_.layers[layer];
  const int D = cfg_.head_dim, half = D / 2, qd = cfg_.q_dim(), kvd = cfg_.kv_dim();
  const float eps = cfg_.rms_norm_eps;
  float* q = q_.get();
  float* kx = kx_.get();
  const float* vx = vx_.get();
  const float* rope = rope_.get();
  const int64_t bs = kv_.block_size;
  void* kpool = k_pool_[layer]->ptr;
  void* vpool = v_pool_[layer]->ptr;
  const bool quantized = kv_dtype_quantized(kv_.dtype);
  const float ks = quantized ? kv_.k_scales[layer] : 1.0f, vs = quantized ? kv_.v_scales[layer] : 1.0f;
  auto rotate = [&](float* v, const float* cs) {
    const float* c = cs;
    const float* s = cs + half;
    for (int i = 0; i < half; i++) {
      const float x1 = v[i], x2 = v[i + half];
      // q*cos + rotate_half(q)*sin, in this order, as transformers computes it
      const float a = x1 * c[i], bterm = (-x2) * s[i];
      const float cterm = x2 * c[i], d = x1 * s[i];
      v[i] = a + bterm;
      v[i + half] = cterm + d;
    }
  };
  pool_.parallel_for(T, [&](int r, int) {
    const float* cs = rope + size_t(r) * D;
    for (int h = 0; h < cfg_.num_heads; h++) {
      float* v = q + size_t(r) * qd + size_t(h) * D;
      k_.rmsnorm(v, L.q_norm, v, D, eps);
      rotate(v, cs);
    }
    const int64_t block = slots_[r] / bs, off = slots_[r] % bs;
    for (int h = 0; h < cfg_.num_kv_heads; h++) {
      float* kv = kx + size_t(r) * kvd + size_t(h) * D;
      k_.rmsnorm(kv, L.k_norm, kv, D, eps);
      rotate(kv, cs);
      // Pool layout per block and KV head: keys [head_dim][slot], values [slot][head_dim].
      const int64_t head_base = (block * cfg_.num_kv_heads + h) * bs * D;
      const float* vv = vx + size_t(r) * kvd + size_t(h) * D;
      switch (kv_.dtype) {
        case KvDType::BF16: {
          uint16_t* kd = static_cast<uint16_t*>(kpool) + head_base + off;
          for (int d = 0; d < D; d++) kd[d * bs] = f32_to_bf16(kv[d]);
          k_.f32_to_bf16(vv, static_cast<uint16_t*>(vpool) + head_base + off * D, D);
          break;
        }
        case KvDType::F32: {
          float* kd = static_cast<float*>(kpool) + head_base + off;
          for (int d = 0; d < D; d++) kd[d * bs] = kv[d];
          std::copy(vv, vv + D, static_cast<float*>(vpool) + head_base + off * D);
          break;
        }
        case KvDType::FP8: {
          uint8_t* kd = static_cast<uint8_t*>(kpool) + head_base + off;
          uint8_t* vd = static_cast<uint8_t*>(vpool) + head_base + off * D;
          for (int d = 0; d < D; d++) kd[d * bs] = kv_quantize_fp8(kv[d], ks);
          for (int d = 0; d < D; d++) vd[d] = kv_quantize_fp8(vv[d], vs);
          break;
        }
        case KvDType::INT8: {
          int8_t* kd = static_cast<int8_t*>(kpool) + head_base + off;
          int8_t* vd = static_cast<int8_t*>(vpool) + head_base + off * D;
          for (int d = 0; d < D; d++) kd[d * bs] = kv_quantize_int8(kv[d], ks);
          for (int d = 0; d < D; d++) vd[d] = kv_quantize_int8(vv[d], vs);
          break;
        }
      }
    }
  });
}

void CpuRunner::attention_layer(const StepBatch& b, int layer) {
  const int D = cfg_.head_dim, G = cfg_.num_heads / cfg_.num_kv_heads, nkv = cfg_.num_kv_heads;
  const float scale = float(std::pow(double(D), -0.5));
  pool_.parallel_for(int(attn_items_.size()), [&](int i, int thread) {
    const AttnItem& it = attn_items_[i];
    AttentionArgs a;
    a.q = q_.get() + size_t(it.row0) * cfg_.q_dim() + size_t(it.head) * G * D;
    a.out = attn_.get() + size_t(it.row0) * cfg_.q_dim() + size_t(it.head) * G * D;
    a.rows = it.row1 - it.row0;
    a.row_stride = cfg_.q_dim();
    a.group = G;
    a.head_dim = D;
    a.k_pool = k_pool_[layer]->ptr;
    a.v_pool = v_pool_[layer]->ptr;
    a.kv_elem = kv_elem(kv_.dtype);
    if (kv_dtype_quantized(kv_.dtype)) {
      a.k_scale = kv_.k_scales[layer];
      a.v_scale = kv_.v_scales[layer];
    }
    a.block_stride = int64_t(nkv) * kv_.block_size * D;
    a.head_offset = int64_t(it.head) * kv_.block_size * D;
    a.block_size = kv_.block_size;
    a.block_table = b.seqs[it.slice].block_table;
    a.ctx_len = positions_[it.row0] + 1;
    a.scale = scale;
    a.scratch = static_cast<float*>(scratch_[thread]->ptr);
    k_.attention(a);
  });
}

void CpuRunner::forward(const StepBatch& b, float* logits) {
  prepare_rows(b);
  const int T = b.num_tokens();
  prof_.step(T);
  const int H = cfg_.hidden_size, I = cfg_.intermediate_size;
  const float eps = cfg_.rms_norm_eps;
  float *x = x_.get(), *h = h_.get(), *gate = gate_.get(), *up = up_.get();

  embed(b, x);
  prof_.mark(PhaseProfile::Embed);
  for (int l = 0; l < cfg_.num_layers; l++) {
    const Qwen3Layer& L = w_.layers[l];
    pool_.parallel_for(T, [&](int r, int) { k_.rmsnorm(x + size_t(r) * H, L.input_norm, h + size_t(r) * H, H, eps); });
    prof_.mark(PhaseProfile::Norms);
    if (opts_.observer) opts_.observer->linear_input(l, CapturePoint::AttnIn, h, T, H);
    {
      const LinearWeight* ws[3] = {&L.q, &L.k, &L.v};
      float* ys[3] = {q_.get(), kx_.get(), vx_.get()};
      linear_forward_multi(ws, ys, 3, h, T, k_, pool_);
      add_lora(l, LoraTarget::Q, h, H, q_.get(), cfg_.q_dim());
      add_lora(l, LoraTarget::K, h, H, kx_.get(), cfg_.kv_dim());
      add_lora(l, LoraTarget::V, h, H, vx_.get(), cfg_.kv_dim());
    }
    prof_.mark(PhaseProfile::Qkv);
    qk_norm_rope_store(T, l);
    prof_.mark(PhaseProfile::RopeKv);
    if (opts_.observer) opts_.observer->kv(l, kx_.get(), vx_.get(), T, cfg_.kv_dim());
    attention_layer(b, l);
    prof_.mark(PhaseProfile::Attention);
    if (opts_.observer) opts_.observer->linear_input(l, CapturePoint::OIn, attn_.get(), T, cfg_.q_dim());
    linear_forward(L.o, attn_.get(), h, T, k_, pool_);
    add_lora(l, LoraTarget::O, attn_.get(), cfg_.q_dim(), h, H);
    reduce_partials(h, T);
    prof_.mark(PhaseProfile::OProj);
    pool_.parallel_for(T, [&](int r, int) {
      k_.add(x + size_t(r) * H, h + size_t(r) * H, H);
      k_.rmsnorm(x + size_t(r) * H, L.post_norm, h + size_t(r) * H, H, eps);
    });
    prof_.mark(PhaseProfile::Norms);
    if (opts_.observer) opts_.observer->linear_input(l, CapturePoint::MlpIn, h, T, H);
    if (!L.experts.empty()) {
      // h is both the experts' input and (through a copy into their grouped rows) free to reuse.
      moe_.forward(L, h, h, T, k_, pool_, opts_.observer, l);
      prof_.mark(PhaseProfile::Down);
      pool_.parallel_for(T, [&](int r, int) { k_.add(x + size_t(r) * H, h + size_t(r) * H, H); });
      prof_.mark(PhaseProfile::Norms);
      continue;
    }
    {
      const LinearWeight* ws[2] = {&L.gate, &L.up};
      float* ys[2] = {gate, up};
      linear_forward_multi(ws, ys, 2, h, T, k_, pool_);
      add_lora(l, LoraTarget::Gate, h, H, gate, I);
      add_lora(l, LoraTarget::Up, h, H, up, I);
    }
    prof_.mark(PhaseProfile::GateUp);
    pool_.parallel_for(T, [&](int r, int) {
      k_.silu_mul(gate + size_t(r) * I, up + size_t(r) * I, gate + size_t(r) * I, I);
    });
    prof_.mark(PhaseProfile::Silu);
    if (opts_.observer) opts_.observer->linear_input(l, CapturePoint::DownIn, gate, T, I);
    linear_forward(L.down, gate, h, T, k_, pool_);
    add_lora(l, LoraTarget::Down, gate, I, h, H);
    reduce_partials(h, T);
    prof_.mark(PhaseProfile::Down);
    pool_.parallel_for(T, [&](int r, int) { k_.add(x + size_t(r) * H, h + size_t(r) * H, H); });
    prof_.mark(PhaseProfile::Norms);
  }
  if (opts_.observer) observe_head_input(T);
  const int R = int(b.logit_rows.size());
  final_rows_ = 0;
  // No logits wanted: a single rank skips its head; tensor-parallel ranks still join the all-gather.
  if (R == 0 || (!logits && !opts_.tp.on())) return;
  float* fin = final_.get();
  final_rows_ = R;
  pool_.parallel_for(R, [&](int i, int) {
    k_.rmsnorm(x + size_t(b.logit_rows[i]) * H, w_.final_norm, fin + size_t(i) * H, H, eps);
  });
  lm_head(b, fin, logits);
  prof_.mark(PhaseProfile::LmHead);
}

// final_ holds the last forward's final-norm rows, one per logit row, in logit-row order.
void CpuRunner::final_hidden(const std::vector<int32_t>& rows, float* out) {
  const int H = cfg_.hidden_size;
  for (size_t i = 0; i < rows.size(); i++) {
    if (rows[i] < 0 || rows[i] >= final_rows_) throw Error("final_hidden: row " + std::to_string(rows[i]) + " is not a logit row of the last step");
    std::copy_n(final_.get() + size_t(rows[i]) * H, H, out + i * H);
  }
}

void CpuRunner::add_lora(int layer, LoraTarget t, const float* x, int64_t ldx, float* y, int64_t ldy) {
  for (const LoraGroup& g : lora_groups_) {
    const LoraDelta* d = g.adapter->delta(layer, t);
    if (d == nullptr) continue;
    const auto [in, out] = g.adapter->shape.dims(t);
    lora_tmp_.resize(std::max(lora_tmp_.size(), lora_scratch_floats(int(g.rows.size()), d->rank, in, out)));
    lora_add(*d, x, ldx, y, ldy, g.rows.data(), int(g.rows.size()), in, out, lora_tmp_.data(), k_, pool_);
  }
}

void CpuRunner::observe_head_input(int T) {
  const int H = cfg_.hidden_size;
  std::vector<float> fin(size_t(T) * H);
  pool_.parallel_for(T, [&](int r, int) {
    k_.rmsnorm(x_.get() + size_t(r) * H, w_.final_norm, fin.data() + size_t(r) * H, H, cfg_.rms_norm_eps);
  });
  opts_.observer->linear_input(cfg_.num_layers, CapturePoint::HeadIn, fin.data(), T, H);
}

// Tensor parallel: this rank holds vocabulary rows [vocab_start, vocab_start + vocab_rows); other
// tokens get a zero row, and the all-reduce leaves each token's one real row on every rank.
void CpuRunner::embed(const StepBatch& b, float* x) {
  const int T = b.num_tokens(), H = cfg_.hidden_size;
  const int start = opts_.tp.on() ? opts_.tp.shard.vocab_start : 0;
  pool_.parallel_for(T, [&](int r, int) {
    const int id = b.tokens[r] - start;
    if (id >= 0 && id < cfg_.vocab_size) k_.bf16_to_f32(w_.embed + size_t(id) * H, x + size_t(r) * H, H);
    else std::fill(x + size_t(r) * H, x + size_t(r + 1) * H, 0.0f);
  });
  if (opts_.tp.on()) opts_.tp.comm->all_reduce_sum(x, size_t(T) * H, CollDType::F32, nullptr);
}

// Tensor parallel: each rank computes the logits of its vocabulary rows; an all-gather gives
// every rank all of them, [rank][row][V/N], reordered here into [row][V].
void CpuRunner::lm_head(const StepBatch& b, const float* fin, float* logits) {
  const int R = int(b.logit_rows.size());
  if (!opts_.tp.on()) {
    linear_forward(w_.lm_head, fin, logits, R, k_, pool_);
    return;
  }
  const int N = opts_.tp.shard.size;
  const size_t Vl = size_t(cfg_.vocab_size), V = size_t(full_.vocab_size);
  tp_logits_.resize(size_t(R) * Vl);
  tp_gathered_.resize(size_t(N) * R * Vl);
  linear_forward(w_.lm_head, fin, tp_logits_.data(), R, k_, pool_);
  opts_.tp.comm->all_gather(tp_logits_.data(), tp_gathered_.data(), size_t(R) * Vl, CollDType::F32, nullptr);
  if (!logits) return;  // a follower: rank 0 returns them
  for (int n = 0; n < N; n++)
    for (int r = 0; r < R; r++)
      std::copy_n(tp_gathered_.data() + (size_t(n) * R + r) * Vl, Vl, logits + size_t(r) * V + size_t(n) * Vl);
}

}  // namespace

std::unique_ptr<ModelRunner> make_cpu_runner(const ModelConfig& cfg, std::shared_ptr<TensorStore> store,
                                             const CpuRunnerOptions& opts) {
  return std::make_unique<CpuRunner>(cfg, std::move(store), opts);
}

}  // namespace grpst
