#include "runtime/cuda_calibration.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "grpst/common.h"

namespace grpst {

namespace cu = grpst::cuda;

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA calibration: ") + what + ": " + cudaGetErrorString(e));
}
// Kept rows (bf16 bits) as the observer takes them.
void widen_rows(const std::vector<uint16_t>& bits, std::vector<float>& out) {
  out.resize(bits.size());
  std::transform(bits.begin(), bits.end(), out.begin(), bf16_to_f32);
}
}  // namespace

CalibrationTaps::CalibrationTaps(const ModelConfig& cfg, int max_tokens) : cfg_(cfg), max_tokens_(max_tokens) {
  const int H = cfg.hidden_size, Q = cfg.q_dim(), KV = cfg.kv_dim();
  layers_.resize(size_t(cfg.num_layers));
  const int cols[4] = {H, Q, H, cfg.intermediate_size};
  for (auto& l : layers_) {
    for (int p = 0; p < 4; ++p) l.in[p] = make_point(cols[p]);
    l.k_max = static_cast<float*>(totals(size_t(KV) * 4, "calibration k maxima"));
    l.v_max = static_cast<float*>(totals(size_t(KV) * 4, "calibration v maxima"));
  }
  head_ = make_point(H);
  normed_ = static_cast<cu::bf16*>(mem_.get(size_t(max_tokens) * std::max(H, Q) * 2, "calibration rows"));
  k_rows_ = static_cast<cu::bf16*>(mem_.get(size_t(max_tokens) * KV * 2, "calibration k rows"));
  v_rows_ = static_cast<cu::bf16*>(mem_.get(size_t(max_tokens) * KV * 2, "calibration v rows"));
  slots_ = static_cast<int32_t*>(mem_.get(size_t(max_tokens) * 4, "calibration slots"));
  std::vector<int32_t> iota(static_cast<size_t>(max_tokens));
  for (int i = 0; i < max_tokens; ++i) iota[size_t(i)] = i;
  check(cudaMemcpy(slots_, iota.data(), iota.size() * 4, cudaMemcpyHostToDevice), "upload slots");
  zero();
}

// A device buffer of running totals: zero() clears every one of them after each flush.
void* CalibrationTaps::totals(size_t bytes, const char* what) {
  void* p = mem_.get(bytes, what);
  zero_ranges_.push_back(p);
  zero_bytes_.push_back(bytes);
  return p;
}

CalibrationTaps::Point CalibrationTaps::make_point(int cols) {
  Point p;
  p.cols = cols;
  p.abs_max = static_cast<float*>(totals(size_t(cols) * 4, "calibration maxima"));
  p.abs_sum = static_cast<double*>(totals(size_t(cols) * 8, "calibration sums"));
  return p;
}

// The steps run on a non-blocking stream, which does not wait on the default stream's memsets: they
// are waited for here (at construction and after each flush, not per step).
void CalibrationTaps::zero() {
  for (size_t i = 0; i < zero_ranges_.size(); ++i) check(cudaMemset(zero_ranges_[i], 0, zero_bytes_[i]), "zero totals");
  check(cudaDeviceSynchronize(), "zero totals");
}

// The sampled rows leave through a pageable copy, which returns once the row is on the host: the
// scratch a normalized input was written to may be reused by the next tap right after.
cu::Status CalibrationTaps::keep_rows(Point& p, const cu::bf16* x, int rows, const cu::Exec& ex) {
  for (int r : sample_rows_) {
    if (r < 0 || r >= rows) continue;
    const size_t at = p.samples.size();
    p.samples.resize(at + size_t(p.cols));
    GRPST_CUDA_CHECK("calibration sample row", cudaMemcpyAsync(p.samples.data() + at, x + size_t(r) * p.cols,
                                                                size_t(p.cols) * 2, cudaMemcpyDeviceToHost, ex.stream));
  }
  return cu::ok_status();
}

cu::Status CalibrationTaps::linear_input(int layer, int point, const cu::bf16* x, int rows, int cols, const float* norm_w,
                                         float eps, const cu::Exec& ex) {
  if (rows > max_tokens_) return cu::invalid("calibration", "step larger than the taps' max_tokens");
  Point& p = point == 4 ? head_ : layers_[size_t(layer)].in[point];
  if (cols != p.cols) return cu::invalid("calibration", "capture point width differs from the model's");
  if (norm_w) {
    GRPST_TRY(cu::rmsnorm(x, nullptr, nullptr, norm_w, normed_, rows, cols, eps, ex));
    x = normed_;
  }
  GRPST_TRY(cu::column_abs_stats(x, rows, cols, cols, p.abs_max, p.abs_sum, ex));
  return keep_rows(p, x, rows, ex);
}

cu::Status CalibrationTaps::kv(int layer, const cu::bf16* qkv, const int32_t* positions, const float* q_norm_w,
                               const float* k_norm_w, float eps, const cu::Rope& rope, int T, const cu::Exec& ex) {
  if (T > max_tokens_) return cu::invalid("calibration", "step larger than the taps' max_tokens");
  const int KV = cfg_.kv_dim();
  // The same kernel the forward pass caches with, into a "cache" of blocks of one slot each: its
  // [blocks, nkv, 1, hd] layout is [T, kv_dim], row t at slot t. q goes to scratch.
  const cu::KvGeometry geo{max_tokens_, 1, cfg_.num_kv_heads, cfg_.head_dim, cu::KvDtype::bf16};
  const cu::KvLayer rows{k_rows_, v_rows_, 1.f, 1.f};
  GRPST_TRY(cu::qk_norm_rope_kv(qkv, positions, slots_, q_norm_w, k_norm_w, eps, rope, T, cfg_.num_heads, geo, rows,
                                normed_, ex));
  LayerTaps& l = layers_[size_t(layer)];
  GRPST_TRY(cu::column_abs_stats(k_rows_, T, KV, KV, l.k_max, nullptr, ex));
  return cu::column_abs_stats(v_rows_, T, KV, KV, l.v_max, nullptr, ex);
}

CalibrationTaps::ExpertLayerTaps& CalibrationTaps::expert_layer(int layer, int experts, int H, int Im,
                                                               cudaStream_t stream) {
  if (expert_layers_.empty()) expert_layers_.resize(size_t(cfg_.num_layers));
  ExpertLayerTaps& l = expert_layers_[size_t(layer)];
  if (l.experts == experts && l.cols[0] == H && l.cols[1] == Im) return l;
  if (l.experts != 0) throw Error("CUDA calibration: a sparse layer's expert shape changed between steps");
  const int cols[2] = {H, Im};
  for (int p = 0; p < 2; ++p) {
    l.cols[p] = cols[p];
    l.abs_max[p] = static_cast<float*>(totals(size_t(experts) * size_t(cols[p]) * 4, "calibration expert maxima"));
    l.abs_sum[p] = static_cast<double*>(totals(size_t(experts) * size_t(cols[p]) * 8, "calibration expert sums"));
    l.samples[p].resize(size_t(experts));
  }
  l.rows = static_cast<unsigned long long*>(totals(size_t(experts) * 8, "calibration expert rows"));
  // zero() cleared the totals allocated before these: start them at zero too, on the step's stream
  // (the statistics kernel follows at once, and that stream need not wait on the default one)
  for (int p = 0; p < 2; ++p) {
    check(cudaMemsetAsync(l.abs_max[p], 0, size_t(experts) * size_t(cols[p]) * 4, stream), "zero expert maxima");
    check(cudaMemsetAsync(l.abs_sum[p], 0, size_t(experts) * size_t(cols[p]) * 8, stream), "zero expert sums");
  }
  check(cudaMemsetAsync(l.rows, 0, size_t(experts) * 8, stream), "zero expert rows");
  l.experts = experts;
  return l;
}

cu::Status CalibrationTaps::expert_inputs(int layer, const cu::ExpertTapInputs& in, const cu::Exec& ex) {
  if (!experts_on_) return cu::ok_status();
  ExpertLayerTaps* l = nullptr;
  try {
    l = &expert_layer(layer, in.E, in.H, in.Im, ex.stream);
  } catch (const std::exception& e) {
    return cu::invalid("calibration", e.what());
  }
  GRPST_TRY(cu::expert_column_abs_stats(in.xn, in.row_token, in.tiles, in.tile_count, in.max_tiles, in.H, l->abs_max[0],
                                        l->abs_sum[0], l->rows, ex));
  GRPST_TRY(cu::expert_column_abs_stats(in.act, nullptr, in.tiles, in.tile_count, in.max_tiles, in.Im, l->abs_max[1],
                                        l->abs_sum[1], nullptr, ex));
  return keep_expert_rows(*l, in, ex);
}

// The sampled tokens' rows, per expert in token order (the order in which the CPU runner hands an
// expert its rows). Their choices and grouped rows come back first: a wait on the step so far.
cu::Status CalibrationTaps::keep_expert_rows(ExpertLayerTaps& l, const cu::ExpertTapInputs& in, const cu::Exec& ex) {
  if (expert_sample_rows_.empty()) return cu::ok_status();
  const size_t P = size_t(in.T) * size_t(in.K);
  std::vector<int32_t> ch(P), sl(P);
  GRPST_CUDA_CHECK("calibration expert choices", cudaMemcpyAsync(ch.data(), in.choice, P * 4, cudaMemcpyDeviceToHost, ex.stream));
  GRPST_CUDA_CHECK("calibration expert slots", cudaMemcpyAsync(sl.data(), in.slot, P * 4, cudaMemcpyDeviceToHost, ex.stream));
  GRPST_CUDA_CHECK("calibration expert choices", cudaStreamSynchronize(ex.stream));
  // Pageable copies return once the row is on the host (keep_rows): the scratch may be reused after.
  auto append_row = [&](std::vector<uint16_t>& to, const cu::bf16* from, int cols) {
    const size_t at = to.size();
    to.resize(at + size_t(cols));
    return cudaMemcpyAsync(to.data() + at, from, size_t(cols) * 2, cudaMemcpyDeviceToHost, ex.stream);
  };
  for (int t : expert_sample_rows_) {
    if (t < 0 || t >= in.T) continue;
    for (int j = 0; j < in.K; ++j) {
      const size_t p = size_t(t) * size_t(in.K) + size_t(j);
      const int e = ch[p], r = sl[p];
      if (e < 0 || e >= l.experts || r < 0 || size_t(r) >= P)
        return cu::invalid("calibration", "an expert choice or grouped row outside the step");
      GRPST_CUDA_CHECK("calibration expert sample",
                       append_row(l.samples[0][size_t(e)], in.xn + size_t(t) * size_t(in.H), in.H));
      GRPST_CUDA_CHECK("calibration expert sample",
                       append_row(l.samples[1][size_t(e)], in.act + size_t(r) * size_t(in.Im), in.Im));
    }
  }
  return cu::ok_status();
}

void CalibrationTaps::report_experts(ForwardObserver& obs) {
  std::vector<float> mx, samples;
  std::vector<double> sum;
  std::vector<unsigned long long> rows;
  for (size_t layer = 0; layer < expert_layers_.size(); ++layer) {
    ExpertLayerTaps& l = expert_layers_[layer];
    if (l.experts == 0) continue;
    rows.resize(size_t(l.experts));
    check(cudaMemcpy(rows.data(), l.rows, rows.size() * 8, cudaMemcpyDeviceToHost), "copy expert rows");
    for (int p = 0; p < 2; ++p) {
      const size_t cols = size_t(l.cols[p]);
      mx.resize(size_t(l.experts) * cols);
      sum.resize(mx.size());
      check(cudaMemcpy(mx.data(), l.abs_max[p], mx.size() * 4, cudaMemcpyDeviceToHost), "copy expert maxima");
      check(cudaMemcpy(sum.data(), l.abs_sum[p], sum.size() * 8, cudaMemcpyDeviceToHost), "copy expert sums");
      const CapturePoint point = p == 0 ? CapturePoint::MlpIn : CapturePoint::DownIn;
      for (int e = 0; e < l.experts; ++e) {
        std::vector<uint16_t>& kept = l.samples[p][size_t(e)];
        if (rows[size_t(e)] > 0) {
          widen_rows(kept, samples);
          const ForwardObserver::ColumnTotals t{int(cols), mx.data() + size_t(e) * cols, sum.data() + size_t(e) * cols,
                                                samples.data(), int(kept.size() / cols)};
          obs.expert_input_totals(int(layer), e, point, int64_t(rows[size_t(e)]), t);
        }
        kept.clear();
      }
    }
  }
}

void CalibrationTaps::flush(ForwardObserver& obs, cudaStream_t stream) {
  check(cudaStreamSynchronize(stream), "calibration pass");
  std::vector<float> mx, samples;
  std::vector<double> sum;
  auto report = [&](int layer, CapturePoint point, Point& p) {
    mx.resize(size_t(p.cols));
    sum.resize(size_t(p.cols));
    check(cudaMemcpy(mx.data(), p.abs_max, mx.size() * 4, cudaMemcpyDeviceToHost), "copy maxima");
    check(cudaMemcpy(sum.data(), p.abs_sum, sum.size() * 8, cudaMemcpyDeviceToHost), "copy sums");
    widen_rows(p.samples, samples);
    ForwardObserver::ColumnTotals t{p.cols, mx.data(), sum.data(), samples.data(), int(p.samples.size() / size_t(p.cols))};
    obs.linear_input_totals(layer, point, t);
    p.samples.clear();
  };
  const int KV = cfg_.kv_dim();
  std::vector<float> kmax(static_cast<size_t>(KV)), vmax(static_cast<size_t>(KV));
  for (int l = 0; l < cfg_.num_layers; ++l) {
    LayerTaps& lt = layers_[size_t(l)];
    for (int p = 0; p < 4; ++p) report(l, CapturePoint(p), lt.in[p]);
    check(cudaMemcpy(kmax.data(), lt.k_max, kmax.size() * 4, cudaMemcpyDeviceToHost), "copy k maxima");
    check(cudaMemcpy(vmax.data(), lt.v_max, vmax.size() * 4, cudaMemcpyDeviceToHost), "copy v maxima");
    obs.kv_totals(l, *std::max_element(kmax.begin(), kmax.end()), vmax.data(), KV);
  }
  report(cfg_.num_layers, CapturePoint::HeadIn, head_);
  report_experts(obs);
  zero();
}

}  // namespace grpst
