#include "runtime/cuda_calibration.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "grpst/common.h"

namespace grpst {

namespace cu = grpst::cuda;

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA calibration: ") + what + ": " + cudaGetErrorString(e));
}
float bf16_bits_to_float(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
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

void CalibrationTaps::zero() {
  for (size_t i = 0; i < zero_ranges_.size(); ++i) check(cudaMemset(zero_ranges_[i], 0, zero_bytes_[i]), "zero totals");
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

cu::Status CalibrationTaps::expert_inputs(int layer, const cu::bf16* xn, const cu::bf16* act, const int32_t* choice,
                                          const int32_t* slot, int T, int K, int H, int Im, const cu::Exec& ex) {
  if (!expert_obs_) return cu::ok_status();
  const size_t P = size_t(T) * size_t(K);
  std::vector<int32_t> ch(P), sl(P);
  std::vector<uint16_t> x(size_t(T) * H), a(P * size_t(Im));
  GRPST_CUDA_CHECK("calibration expert choices", cudaMemcpyAsync(ch.data(), choice, P * 4, cudaMemcpyDeviceToHost, ex.stream));
  GRPST_CUDA_CHECK("calibration expert slots", cudaMemcpyAsync(sl.data(), slot, P * 4, cudaMemcpyDeviceToHost, ex.stream));
  GRPST_CUDA_CHECK("calibration expert inputs", cudaMemcpyAsync(x.data(), xn, x.size() * 2, cudaMemcpyDeviceToHost, ex.stream));
  GRPST_CUDA_CHECK("calibration expert activations",
                   cudaMemcpyAsync(a.data(), act, a.size() * 2, cudaMemcpyDeviceToHost, ex.stream));
  GRPST_CUDA_CHECK("calibration expert inputs", cudaStreamSynchronize(ex.stream));
  // Grouped row r (the pairs ordered by expert, then by pair) holds pair pair_of[r]: token p / K,
  // expert choice[p]. Each expert's rows are consecutive.
  std::vector<int32_t> pair_of(P);
  for (size_t p = 0; p < P; ++p) {
    if (sl[p] < 0 || size_t(sl[p]) >= P) return cu::invalid("calibration", "an expert slot outside the step");
    pair_of[size_t(sl[p])] = int32_t(p);
  }
  std::vector<float> rows_x, rows_a;
  std::vector<int32_t> tokens;
  for (size_t r0 = 0; r0 < P;) {
    const int32_t e = ch[size_t(pair_of[r0])];
    size_t r1 = r0;
    while (r1 < P && ch[size_t(pair_of[r1])] == e) ++r1;
    const size_t n = r1 - r0;
    rows_x.resize(n * size_t(H));
    rows_a.resize(n * size_t(Im));
    tokens.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const int t = pair_of[r0 + i] / K;
      tokens[i] = size_t(t) < row_origin_.size() ? row_origin_[size_t(t)] : t;
      for (int c = 0; c < H; ++c) rows_x[i * size_t(H) + size_t(c)] = bf16_bits_to_float(x[size_t(t) * H + size_t(c)]);
      for (int c = 0; c < Im; ++c)
        rows_a[i * size_t(Im) + size_t(c)] = bf16_bits_to_float(a[(r0 + i) * size_t(Im) + size_t(c)]);
    }
    expert_obs_->expert_input(layer, e, CapturePoint::MlpIn, rows_x.data(), tokens.data(), int(n), H);
    expert_obs_->expert_input(layer, e, CapturePoint::DownIn, rows_a.data(), tokens.data(), int(n), Im);
    r0 = r1;
  }
  return cu::ok_status();
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
    samples.resize(p.samples.size());
    for (size_t i = 0; i < p.samples.size(); ++i) samples[i] = bf16_bits_to_float(p.samples[i]);
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
  zero();
}

}  // namespace grpst
