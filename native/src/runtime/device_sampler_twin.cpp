#include "grpst/device_sampler_twin.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "grpst/sampler.h"

namespace grpst {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Whether (va, a) ranks before (vb, b): the higher value, ties to the lower id (the kernels' order).
bool ranks_before(float va, int a, float vb, int b) { return va > vb || (va == vb && a < b); }

// One row's draw, following sample_kernel step by step. lg: scratch [vocab].
int32_t draw_row(const DeviceSample& p, const StepBatch& batch, const float* raw, int vocab, std::vector<float>& lg) {
  const LogitEdit* edits = p.edit_count > 0 ? batch.logit_edits.data() + p.edit_begin : nullptr;
  const uint32_t* mask = p.mask >= 0 ? batch.masks.data() + size_t(p.mask) * size_t((vocab + 31) / 32) : nullptr;
  const bool greedy = p.temperature <= 0.f;
  const float inv_t = greedy ? 1.f : 1.f / p.temperature;
  auto start = [&](int t) {
    return sample_allowed(mask, t) ? raw[t] + (edits ? sample_edit_delta(edits, p.edit_count, t) : 0.f) : kNegInf;
  };
  for (int i = 0; i < vocab; i++) lg[size_t(i)] = sample_allowed(mask, i) ? raw[i] * inv_t : kNegInf;
  for (int j = 0; j < p.edit_count; j++) lg[size_t(edits[j].token)] = start(edits[j].token) * inv_t;
  const bool penal = (p.prompt_count > 0 || p.output_count > 0) &&
                     (p.repetition_penalty != 1.f || p.presence_penalty != 0.f || p.frequency_penalty != 0.f);
  if (penal) {
    const float rp = p.repetition_penalty;
    if (rp != 1.f)
      for (int j = 0; j < p.prompt_count; j++) {
        const int t = batch.penalty_prompt_tokens[size_t(p.prompt_begin + j)];
        const float l = start(t);
        lg[size_t(t)] = (l > 0.f ? l / rp : l * rp) * inv_t;
      }
    for (int j = 0; j < p.output_count; j++) {
      const int t = batch.penalty_output_counts[size_t(2 * (p.output_begin + j))];
      const int count = batch.penalty_output_counts[size_t(2 * (p.output_begin + j) + 1)];
      float l = start(t);
      if (rp != 1.f) l = l > 0.f ? l / rp : l * rp;
      l -= float(count) * p.frequency_penalty + p.presence_penalty;
      lg[size_t(t)] = l * inv_t;
    }
  }
  float mod_max = kNegInf;
  for (float l : lg) mod_max = std::fmax(mod_max, l);
  if (mod_max == kNegInf) return -1;  // every token banned or masked out
  if (greedy) {
    int best = 0;
    for (int i = 1; i < vocab; i++)
      if (ranks_before(lg[size_t(i)], i, lg[size_t(best)], best)) best = i;
    return best;
  }
  // top_k: keep values >= the k-th largest (ties kept).
  float cut = kNegInf;
  if (p.top_k > 0 && p.top_k < vocab) {
    std::vector<float> sorted(lg);
    std::nth_element(sorted.begin(), sorted.begin() + (p.top_k - 1), sorted.end(), std::greater<float>());
    cut = sorted[size_t(p.top_k - 1)];
  }
  // top_p over the top_k survivors: the largest value v whose mass at or above it reaches top_p of theirs.
  if (p.top_p < 1.f) {
    std::vector<float> kept;
    for (float l : lg)
      if (l >= cut) kept.push_back(l);
    std::sort(kept.begin(), kept.end(), std::greater<float>());
    double z = 0;
    for (float l : kept) z += std::exp(double(l) - mod_max);
    const double target = double(p.top_p) * z;
    double mass = 0;
    for (size_t j = 0; j < kept.size();) {
      size_t e = j;
      while (e < kept.size() && kept[e] == kept[j]) mass += std::exp(double(kept[e++]) - mod_max);
      if (mass >= target) {
        cut = std::max(cut, kept[j]);
        break;
      }
      j = e;
    }
  }
  const float min_l = p.min_p > 0.f ? mod_max + std::log(p.min_p) : kNegInf;
  int best = -1;
  float best_v = kNegInf;
  for (int i = 0; i < vocab; i++) {
    const float l = lg[size_t(i)];
    if (l < cut || l < min_l) continue;
    const float v = l - std::log(-std::log(sample_uniform(p.seed, p.step, i)));
    if (best < 0 || ranks_before(v, i, best_v, best)) best = i, best_v = v;
  }
  return best;
}

// The row's n best entries (best first, ties to the lower id, NaN never listed) with their
// log-softmax over the raw row.
void top_entries(const float* raw, int vocab, int n, double lse, int32_t* tokens, float* logprobs) {
  std::vector<int> order;
  order.reserve(size_t(vocab));
  for (int i = 0; i < vocab; i++)
    if (!std::isnan(raw[i])) order.push_back(i);
  const size_t take = std::min(order.size(), size_t(n));
  std::partial_sort(order.begin(), order.begin() + take, order.end(),
                    [&](int a, int b) { return ranks_before(raw[a], a, raw[b], b); });
  for (size_t k = 0; k < take; k++) {
    tokens[k] = order[k];
    logprobs[k] = float(double(raw[order[k]]) - lse);
  }
}

class TwinSamplingRunner : public ModelRunner {
 public:
  explicit TwinSamplingRunner(std::unique_ptr<ModelRunner> inner) : inner_(std::move(inner)) {}
  const ModelConfig& config() const override { return inner_->config(); }
  std::string device() const override { return inner_->device(); }
  std::string kernels() const override { return inner_->kernels(); }
  int threads() const override { return inner_->threads(); }
  size_t kv_bytes_per_token(KvDType dtype) const override { return inner_->kv_bytes_per_token(dtype); }
  void allocate_kv(const KvCacheSpec& spec) override { inner_->allocate_kv(spec); }
  void forward(const StepBatch& batch, float* logits) override { inner_->forward(batch, logits); }
  int64_t weight_bytes_per_step() const override { return inner_->weight_bytes_per_step(); }
  bool samples_on_device() const override { return true; }
  bool supports_lora() const override { return inner_->supports_lora(); }
  const float* forward_sampled(const StepBatch& batch, float* logits, DeviceDrawResults& draws,
                               const std::function<void()>& before_draws) override {
    // A caller that wants the draws alone (a draft model's proposals) passes no buffer; the twin
    // draws from host rows, so it fills one of its own.
    float* rows = logits;
    if (!rows) {
      own_rows_.resize(batch.logit_rows.size() * size_t(inner_->config().vocab_size));
      rows = own_rows_.data();
    }
    inner_->forward(batch, rows);
    if (before_draws) before_draws();
    draw_device_samples_on_host(batch, rows, inner_->config().vocab_size, draws);
    return rows;
  }
  void final_hidden(const std::vector<int32_t>& rows, float* out) override { inner_->final_hidden(rows, out); }
  void flush_observer() override { inner_->flush_observer(); }

 private:
  std::unique_ptr<ModelRunner> inner_;
  std::vector<float> own_rows_;  // forward_sampled without a logits buffer
};

}  // namespace

void draw_device_samples_on_host(const StepBatch& batch, const float* logits, int vocab, DeviceDrawResults& out) {
  const size_t D = batch.device_samples.size(), K = DeviceDrawResults::kMaxTop;
  out.tokens.assign(D, -1);
  out.logprobs.assign(D, 0.f);
  out.top_tokens.assign(D * K, -1);
  out.top_logprobs.assign(D * K, 0.f);
  std::vector<float> lg(static_cast<size_t>(vocab));
  auto log_sum_exp = [&](const float* raw) {
    float raw_max = kNegInf;
    for (int v = 0; v < vocab; v++) raw_max = std::fmax(raw_max, raw[v]);
    double sum = 0;
    for (int v = 0; v < vocab; v++) sum += std::exp(double(raw[v]) - raw_max);
    return raw_max + std::log(sum);
  };
  for (size_t i = 0; i < D; i++) {
    const DeviceSample& d = batch.device_samples[i];
    if (d.top_n > int(K)) throw Error("device sampler: more top logprobs than the device draws (20)");
    const float* raw = logits + size_t(d.logit_row) * size_t(vocab);
    const int32_t token = draw_row(d, batch, raw, vocab, lg);
    const double lse = log_sum_exp(raw);
    out.tokens[i] = token;
    out.logprobs[i] = token >= 0 ? float(double(raw[token]) - lse) : kNegInf;
    if (d.top_n > 0) top_entries(raw, vocab, d.top_n, lse, out.top_tokens.data() + i * K, out.top_logprobs.data() + i * K);
  }
  // Prompt rows: the target's logprob, its rank (entries at or above it, at least 1), the best entries.
  const size_t P = batch.device_prompt_rows.size();
  out.prompt_logprobs.assign(P, 0.f);
  out.prompt_ranks.assign(P, 0);
  out.prompt_top_tokens.assign(P * K, -1);
  out.prompt_top_logprobs.assign(P * K, 0.f);
  for (size_t i = 0; i < P; i++) {
    const DevicePromptRow& r = batch.device_prompt_rows[i];
    if (r.top_n > int(K)) throw Error("device sampler: more top logprobs than the device lists (20)");
    const float* raw = logits + size_t(r.logit_row) * size_t(vocab);
    const double lse = log_sum_exp(raw);
    out.prompt_logprobs[i] = float(double(raw[r.target]) - lse);
    out.prompt_ranks[i] = Sampler::rank_of(raw, vocab, r.target);
    if (r.top_n > 0)
      top_entries(raw, vocab, r.top_n, lse, out.prompt_top_tokens.data() + i * K, out.prompt_top_logprobs.data() + i * K);
  }
}

std::unique_ptr<ModelRunner> with_device_sampler_twin(std::unique_ptr<ModelRunner> inner) {
  return std::make_unique<TwinSamplingRunner>(std::move(inner));
}

}  // namespace grpst
