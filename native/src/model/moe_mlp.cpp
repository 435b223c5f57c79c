#include "model/moe_mlp.h"

#include <algorithm>
#include <cmath>

#include "grpst/linear.h"

namespace grpst {

void MoeMlp::reserve(const ModelConfig& cfg, int max_tokens) {
  if (!cfg.moe.on()) return;
  H_ = cfg.hidden_size;
  E_ = cfg.moe.num_experts;
  K_ = cfg.moe.experts_per_tok;
  Im_ = cfg.moe.intermediate_size;
  norm_topk_ = cfg.moe.norm_topk_prob;
  const size_t T = size_t(std::max(1, max_tokens)), rows = T * size_t(K_);
  logits_.resize(T * E_);
  choice_.resize(rows);
  weight_.resize(rows);
  slot_.resize(rows);
  token_.resize(rows);
  start_.resize(size_t(E_) + 1);
  next_.resize(size_t(E_));
  order_.resize(size_t(E_));
  xs_ = std::make_unique<AlignedBuffer>(rows * H_ * sizeof(float));
  ys_ = std::make_unique<AlignedBuffer>(rows * H_ * sizeof(float));
  gate_ = std::make_unique<AlignedBuffer>(rows * Im_ * sizeof(float));
  up_ = std::make_unique<AlignedBuffer>(rows * Im_ * sizeof(float));
}

void MoeMlp::route(int T) {
  std::vector<int32_t>& order = order_;
  std::fill(start_.begin(), start_.end(), 0);
  for (int t = 0; t < T; t++) {
    float* p = logits_.data() + size_t(t) * E_;
    // softmax in fp32 (transformers: softmax(router_logits, dtype=float))
    const float mx = *std::max_element(p, p + E_);
    float sum = 0.f;
    for (int e = 0; e < E_; e++) sum += (p[e] = std::exp(p[e] - mx));
    for (int e = 0; e < E_; e++) p[e] /= sum;
    for (int e = 0; e < E_; e++) order[e] = e;
    // the k largest, falling; equal probabilities keep the lower expert first
    std::partial_sort(order.begin(), order.begin() + K_, order.end(),
                      [p](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float kept = 0.f;
    for (int j = 0; j < K_; j++) kept += p[order[j]];
    for (int j = 0; j < K_; j++) {
      choice_[size_t(t) * K_ + j] = order[j];
      weight_[size_t(t) * K_ + j] = norm_topk_ ? p[order[j]] / kept : p[order[j]];
      start_[size_t(order[j]) + 1]++;
    }
  }
  for (int e = 0; e < E_; e++) start_[size_t(e) + 1] += start_[size_t(e)];
  std::copy(start_.begin(), start_.end() - 1, next_.begin());
  for (int t = 0; t < T; t++)
    for (int j = 0; j < K_; j++) {
      const int32_t row = next_[size_t(choice_[size_t(t) * K_ + j])]++;
      slot_[size_t(t) * K_ + j] = row;
      token_[size_t(row)] = t;
    }
}

void MoeMlp::forward(const Qwen3Layer& L, const float* x, float* y, int T, const CpuKernels& k, ThreadPool& pool,
                     ForwardObserver* observer, int layer) {
  if (L.experts.empty() || T <= 0) return;
  linear_forward(L.router, x, logits_.data(), T, k, pool);
  route(T);
  float *xs = grouped(xs_), *ys = grouped(ys_), *g = grouped(gate_), *u = grouped(up_);
  const int rows = T * K_;
  pool.parallel_for(rows, [&](int r, int) {
    std::copy_n(x + size_t(token_[size_t(r)]) * H_, H_, xs + size_t(r) * H_);
  });
  for (int e = 0; e < E_; e++) {
    const int r0 = start_[size_t(e)], n = start_[size_t(e) + 1] - r0;
    if (n == 0) continue;  // no token chose it: its weights are not read this step
    const Qwen3Expert& ex = L.experts[size_t(e)];
    float* xe = xs + size_t(r0) * H_;
    const int32_t* tokens = token_.data() + r0;
    if (observer) observer->expert_input(layer, e, CapturePoint::MlpIn, xe, tokens, n, H_);
    // AWQ / SmoothQuant factors of this expert alone: the layer's norm is shared by every expert
    // (and the router), so they cannot fold into it; the rows are this expert's own copies.
    if (ex.pre_quant_scale) {
      const float* s = ex.pre_quant_scale;
      pool.parallel_for(n, [&](int i, int) {
        float* row = xe + size_t(i) * H_;
        for (int c = 0; c < H_; c++) row[c] *= s[c];
      });
    }
    const LinearWeight* ws[2] = {&ex.gate, &ex.up};
    float* outs[2] = {g + size_t(r0) * Im_, u + size_t(r0) * Im_};
    linear_forward_multi(ws, outs, 2, xe, n, k, pool);
    pool.parallel_for(n, [&](int i, int) {
      float* gi = g + size_t(r0 + i) * Im_;
      k.silu_mul(gi, u + size_t(r0 + i) * Im_, gi, Im_);
    });
    if (observer) observer->expert_input(layer, e, CapturePoint::DownIn, g + size_t(r0) * Im_, tokens, n, Im_);
    linear_forward(ex.down, g + size_t(r0) * Im_, ys + size_t(r0) * H_, n, k, pool);
  }
  // Each token's outputs added in expert order, as transformers' index_add over the experts does:
  // its K experts are distinct, so each pass takes the smallest expert above the last one.
  pool.parallel_for(T, [&](int t, int) {
    float* yt = y + size_t(t) * H_;
    const int32_t* ch = choice_.data() + size_t(t) * K_;
    std::fill_n(yt, H_, 0.f);
    for (int m = 0, last = -1; m < K_; m++) {
      int j = -1;
      for (int c = 0; c < K_; c++)
        if (ch[c] > last && (j < 0 || ch[c] < ch[j])) j = c;
      last = ch[j];
      const float w = weight_[size_t(t) * K_ + j];
      const float* src = ys + size_t(slot_[size_t(t) * K_ + j]) * H_;
      for (int i = 0; i < H_; i++) yt[i] += w * src[i];
    }
  });
}

}  // namespace grpst
