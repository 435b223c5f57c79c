// What `calibrate` accumulates while text runs through a model (model_tools.cpp): per layer, the
// statistics of each linear group's input (per-column max |x| and sum |x|, and a sample of rows for
// AWQ's search), the cached K/V's amax and, in a Qwen3-MoE sparse layer, the same statistics of each
// expert's own inputs: the rows of the tokens the router sent to it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "grpst/forward_observer.h"

namespace grpst::addon {

struct Capture {
  int cols = 0;
  std::vector<float> abs_max;
  std::vector<double> abs_sum;
  std::vector<float> samples;  // [kept, cols]
  int kept = 0;
  int64_t rows = 0;  // rows seen: every token for a layer input, the routed ones for an expert's

  void reset(int c) {
    cols = c;
    abs_max.assign(size_t(c), 0.0f);
    abs_sum.assign(size_t(c), 0.0);
  }
  void add_row(const float* row) {
    for (int i = 0; i < cols; i++) {
      const float a = std::fabs(row[i]);
      abs_max[size_t(i)] = std::max(abs_max[size_t(i)], a);
      abs_sum[size_t(i)] += a;
    }
    rows++;
  }
  void keep(const float* row) {
    samples.insert(samples.end(), row, row + cols);
    kept++;
  }
};

/** One expert's two inputs: [0] what gate/up_proj read (CapturePoint::MlpIn), [1] down_proj's (DownIn). */
struct ExpertStats {
  Capture cap[2];
};

struct LayerStats {
  Capture cap[4];
  float k_amax = 0, v_amax = 0;
  // [kv_dim]: max |v| per channel. A build that folds o_proj's factors into v_proj rows (AWQ,
  // SmoothQuant) divides each channel by its own factor, so the engine's cache amax follows from these.
  std::vector<float> v_abs_max;
  // A sparse layer's experts (empty for a dense layer, and for an expert no token reached: all zero, rows 0).
  std::vector<ExpertStats> experts;
};

/** Accumulates statistics over every token; keeps every `stride`-th token row as a sample. */
class CalibrationObserver final : public ForwardObserver {
 public:
  CalibrationObserver(int layers, int64_t stride, int max_samples, int64_t first_token)
      : layers_(size_t(layers)), stride_(stride), max_samples_(max_samples), base_(first_token) {}

  void begin_chunk(int64_t first_token) { first_ = first_token; }
  int64_t tokens() const { return tokens_; }
  void count(int rows) { tokens_ += rows; }
  std::vector<LayerStats>& layers() { return layers_; }
  const Capture& head() const { return head_; }

  void linear_input(int layer, CapturePoint point, const float* x, int rows, int cols) override {
    Capture& c = capture(layer, point, cols);
    for (int r = 0; r < rows; r++) {
      const float* row = x + int64_t(r) * cols;
      c.add_row(row);
      if (sampled(r) && c.kept < max_samples_) c.keep(row);
    }
  }

  // An expert's rows are sampled by the token they came from: its samples are its share of the
  // tokens every layer input keeps, so the samples of all experts together stay within k times a
  // dense layer's.
  void expert_input(int layer, int expert, CapturePoint point, const float* x, const int32_t* token, int rows,
                    int cols) override {
    if (point != CapturePoint::MlpIn && point != CapturePoint::DownIn) return;
    Capture& c = expert_capture(layer, expert, point, cols);
    for (int r = 0; r < rows; r++) {
      const float* row = x + int64_t(r) * cols;
      c.add_row(row);
      if (sampled(token[r]) && c.kept < max_samples_) c.keep(row);
    }
  }

  // The GPU runner's form: the rows to keep are decided per step, the statistics arrive as totals.
  std::vector<int> sample_rows(int rows) override {
    std::vector<int> out;
    for (int r = 0; r < rows && promised_ < max_samples_; r++)
      if (sampled(r)) {
        out.push_back(r);
        promised_++;
      }
    return out;
  }

  void linear_input_totals(int layer, CapturePoint point, const ColumnTotals& t) override {
    Capture& c = capture(layer, point, t.cols);
    for (int i = 0; i < t.cols; i++) {
      c.abs_max[size_t(i)] = std::max(c.abs_max[size_t(i)], t.abs_max[i]);
      c.abs_sum[size_t(i)] += t.abs_sum[i];
    }
    c.samples.insert(c.samples.end(), t.samples, t.samples + size_t(t.sample_rows) * t.cols);
    c.kept += t.sample_rows;
  }

  std::vector<int> expert_sample_rows(int rows) override {
    std::vector<int> out;
    for (int r = 0; r < rows; r++)
      if (sampled(r)) out.push_back(r);
    return out;
  }

  // The samples arrive in the order expert_input would have kept them, so the first max_samples_
  // are the same rows.
  void expert_input_totals(int layer, int expert, CapturePoint point, int64_t rows, const ColumnTotals& t) override {
    if (point != CapturePoint::MlpIn && point != CapturePoint::DownIn) return;
    Capture& c = expert_capture(layer, expert, point, t.cols);
    for (int i = 0; i < t.cols; i++) {
      c.abs_max[size_t(i)] = std::max(c.abs_max[size_t(i)], t.abs_max[i]);
      c.abs_sum[size_t(i)] += t.abs_sum[i];
    }
    c.rows += rows;
    const int keep = std::min(t.sample_rows, std::max(0, max_samples_ - c.kept));
    c.samples.insert(c.samples.end(), t.samples, t.samples + size_t(keep) * size_t(t.cols));
    c.kept += keep;
  }

  void kv_totals(int layer, float k_amax, const float* v_abs_max, int kv_dim) override {
    LayerStats& s = kv_stats(layer, kv_dim);
    s.k_amax = std::max(s.k_amax, k_amax);
    for (int i = 0; i < kv_dim; i++) {
      s.v_abs_max[size_t(i)] = std::max(s.v_abs_max[size_t(i)], v_abs_max[i]);
      s.v_amax = std::max(s.v_amax, s.v_abs_max[size_t(i)]);
    }
  }

  void kv(int layer, const float* k, const float* v, int rows, int kv_dim) override {
    LayerStats& s = kv_stats(layer, kv_dim);
    for (int r = 0; r < rows; r++) {
      const float* kr = k + int64_t(r) * kv_dim;
      const float* vr = v + int64_t(r) * kv_dim;
      for (int i = 0; i < kv_dim; i++) {
        s.k_amax = std::max(s.k_amax, std::fabs(kr[i]));
        s.v_abs_max[size_t(i)] = std::max(s.v_abs_max[size_t(i)], std::fabs(vr[i]));
        s.v_amax = std::max(s.v_amax, s.v_abs_max[size_t(i)]);
      }
    }
  }

 private:
  /** Row r of the current chunk is a sample when its index in the whole text is a multiple of the stride. */
  bool sampled(int r) const { return (base_ + first_ + r) % stride_ == 0; }
  Capture& capture(int layer, CapturePoint point, int cols) {
    Capture& c = point == CapturePoint::HeadIn ? head_ : layers_[size_t(layer)].cap[int(point)];
    if (c.cols == 0) c.reset(cols);
    return c;
  }
  Capture& expert_capture(int layer, int expert, CapturePoint point, int cols) {
    std::vector<ExpertStats>& experts = layers_[size_t(layer)].experts;
    if (experts.size() <= size_t(expert)) experts.resize(size_t(expert) + 1);
    Capture& c = experts[size_t(expert)].cap[point == CapturePoint::MlpIn ? 0 : 1];
    if (c.cols == 0) c.reset(cols);
    return c;
  }
  LayerStats& kv_stats(int layer, int kv_dim) {
    LayerStats& s = layers_[size_t(layer)];
    if (s.v_abs_max.empty()) s.v_abs_max.assign(size_t(kv_dim), 0.0f);
    return s;
  }

  std::vector<LayerStats> layers_;
  Capture head_;  // lm_head's input (CapturePoint::HeadIn)
  int64_t stride_;
  int max_samples_;
  int64_t base_;
  int64_t first_ = 0;
  int64_t tokens_ = 0;
  int promised_ = 0;  // rows sample_rows() has handed out (the GPU runner's form)
};

/** Forwards to whichever observer the current operation set (none outside calibration). */
class ProxyObserver final : public ForwardObserver {
 public:
  ForwardObserver* target = nullptr;
  void linear_input(int layer, CapturePoint point, const float* x, int rows, int cols) override {
    if (target) target->linear_input(layer, point, x, rows, cols);
  }
  void expert_input(int layer, int expert, CapturePoint point, const float* x, const int32_t* token, int rows,
                    int cols) override {
    if (target) target->expert_input(layer, expert, point, x, token, rows, cols);
  }
  void kv(int layer, const float* k, const float* v, int rows, int kv_dim) override {
    if (target) target->kv(layer, k, v, rows, kv_dim);
  }
  bool active() const override { return target != nullptr; }
  std::vector<int> sample_rows(int rows) override { return target ? target->sample_rows(rows) : std::vector<int>(); }
  void linear_input_totals(int layer, CapturePoint point, const ColumnTotals& t) override {
    if (target) target->linear_input_totals(layer, point, t);
  }
  void kv_totals(int layer, float k_amax, const float* v_abs_max, int kv_dim) override {
    if (target) target->kv_totals(layer, k_amax, v_abs_max, kv_dim);
  }
  std::vector<int> expert_sample_rows(int rows) override {
    return target ? target->expert_sample_rows(rows) : std::vector<int>();
  }
  void expert_input_totals(int layer, int expert, CapturePoint point, int64_t rows, const ColumnTotals& t) override {
    if (target) target->expert_input_totals(layer, expert, point, rows, t);
  }
};

}  // namespace grpst::addon
