#include "reference.h"

#include <algorithm>
#include <cmath>

namespace ref {

using harness::bf2f;
using harness::f2bf;
using harness::rbf;

void embedding(const std::vector<int32_t>& ids, const V16& table, int H, int V, V16& out) {
  out.assign(ids.size() * H, 0);
  for (size_t t = 0; t < ids.size(); ++t)
    if (ids[t] >= 0 && ids[t] < V)
      std::copy_n(table.begin() + static_cast<size_t>(ids[t]) * H, H, out.begin() + t * H);
}

void rmsnorm(const V16& x, const V16* residual, V16* residual_out, const VF& w, int M, int H, float eps, V16& y) {
  y.assign(static_cast<size_t>(M) * H, 0);
  if (residual_out) residual_out->resize(static_cast<size_t>(M) * H);
  std::vector<float> row(H);
  for (int m = 0; m < M; ++m) {
    double ss = 0;
    for (int k = 0; k < H; ++k) {
      const size_t i = static_cast<size_t>(m) * H + k;
      float f = bf2f(x[i]);
      if (residual) f = rbf(f + bf2f((*residual)[i]));
      if (residual && residual_out) (*residual_out)[i] = f2bf(f);
      row[k] = f;
      ss += static_cast<double>(f) * f;
    }
    const float rstd = 1.f / std::sqrt(static_cast<float>(ss / H) + eps);
    for (int k = 0; k < H; ++k) y[static_cast<size_t>(m) * H + k] = f2bf(w[k] * rbf(row[k] * rstd));
  }
}

static float silu_bf16(float g) { return rbf(g / (1.f + std::exp(-g))); }

void all_reduce_sum(const std::vector<V16>& per_rank, V16& out) {
  out.assign(per_rank[0].size(), 0);
  for (size_t i = 0; i < out.size(); ++i) {
    float sum = harness::bf2f(per_rank[0][i]);
    for (size_t r = 1; r < per_rank.size(); ++r) sum += harness::bf2f(per_rank[r][i]);
    out[i] = harness::f2bf(sum);
  }
}

void swiglu(const V16& gu, int M, int I, V16& out) {
  out.assign(static_cast<size_t>(M) * I, 0);
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < I; ++j) {
      const float g = bf2f(gu[static_cast<size_t>(m) * 2 * I + 2 * j]);
      const float u = bf2f(gu[static_cast<size_t>(m) * 2 * I + 2 * j + 1]);
      out[static_cast<size_t>(m) * I + j] = f2bf(silu_bf16(g) * u);
    }
}

void awq_delta(const VF& w, const VF& s, int rows, int K, int group, VF& delta) {
  delta.assign(static_cast<size_t>(rows) * K, 0.f);
  std::vector<float> scaled(K);
  for (int r = 0; r < rows; ++r) {
    const float* wr = w.data() + static_cast<size_t>(r) * K;
    for (int c = 0; c < K; ++c) scaled[c] = s.empty() ? wr[c] : wr[c] * s[c];
    for (int g0 = 0; g0 < K; g0 += group) {
      float amax = 0;
      for (int i = 0; i < group; ++i) amax = std::max(amax, std::fabs(scaled[g0 + i]));
      const float scale = amax / 7.0f;
      for (int i = 0; i < group; ++i) {
        const int c = g0 + i;
        float q = 0;
        if (scale != 0) q = std::clamp(std::nearbyint(scaled[c] / scale), -8.0f, 7.0f) * scale;
        delta[static_cast<size_t>(r) * K + c] = wr[c] - (s.empty() ? q : q / s[c]);
      }
    }
  }
}

double awq_sumsq(const VF& x, const VF& delta, int n, int rows, int K) {
  double total = 0;
  for (int t = 0; t < n; ++t)
    for (int o = 0; o < rows; ++o) {
      double dot = 0;
      for (int c = 0; c < K; ++c) dot += static_cast<double>(x[static_cast<size_t>(t) * K + c]) * delta[static_cast<size_t>(o) * K + c];
      total += dot * dot;
    }
  return total;
}

void column_abs_stats(const V16& x, int rows, int cols, int ld, VF& abs_max, std::vector<double>& abs_sum) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const float a = std::fabs(bf2f(x[static_cast<size_t>(r) * ld + c]));
      abs_max[c] = std::max(abs_max[c], a);
      abs_sum[c] += a;
    }
}

void KvHost::allocate() {
  const size_t n = static_cast<size_t>(num_blocks) * nkv * block_size * hd * elem();
  k.assign(n, 0);
  v.assign(n, 0);
}

void KvHost::dequantize_all() {
  const size_t n = static_cast<size_t>(num_blocks) * nkv * block_size * hd;
  kf.resize(n);
  vf.resize(n);
  for (size_t i = 0; i < n; ++i) {
    kf[i] = get(true, i);
    vf[i] = get(false, i);
  }
}

float KvHost::get(bool is_k, size_t i) const {
  const std::vector<uint8_t>& b = is_k ? k : v;
  const float s = is_k ? k_scale : v_scale;
  switch (dtype) {
    case KvDtype::bf16: return bf2f(static_cast<uint16_t>(b[2 * i] | (b[2 * i + 1] << 8)));
    case KvDtype::fp8: return harness::e4m32f(b[i]) * s;
    case KvDtype::int8: return static_cast<float>(static_cast<int8_t>(b[i])) * s;
  }
  return 0;
}

void KvHost::put(bool is_k, size_t i, float value) {
  std::vector<uint8_t>& b = is_k ? k : v;
  const float scale = is_k ? k_scale : v_scale;
  switch (dtype) {
    case KvDtype::bf16: {
      const uint16_t h = f2bf(value);
      b[2 * i] = h & 0xff;
      b[2 * i + 1] = h >> 8;
      break;
    }
    case KvDtype::fp8: b[i] = harness::f2e4m3(value / scale); break;
    case KvDtype::int8: b[i] = static_cast<uint8_t>(harness::f2i8(value / scale)); break;
  }
}

void qk_norm_rope_kv(const V16& qkv, const std::vector<int32_t>& positions, const std::vector<int32_t>& slots,
                     const VF& q_norm_w, const VF& k_norm_w, float eps, const std::vector<float>& inv_freq,
                     float attention_scaling, int T, int nh, KvHost& kv, V16& q_out) {
  const int hd = kv.hd, nkv = kv.nkv, heads = nh + 2 * nkv, half = hd / 2;
  q_out.assign(static_cast<size_t>(T) * nh * hd, 0);
  std::vector<float> y(hd);
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < heads; ++h) {
      const uint16_t* src = &qkv[(static_cast<size_t>(t) * heads + h) * hd];
      const int slot = slots[t];
      const int blk = slot >= 0 ? slot / kv.block_size : 0, off = slot >= 0 ? slot % kv.block_size : 0;
      if (h >= nh + nkv) {
        if (slot < 0) continue;
        for (int d = 0; d < hd; ++d) kv.put(false, kv.index(blk, h - nh - nkv, off, d), bf2f(src[d]));
        continue;
      }
      const bool is_q = h < nh;
      const VF& nw = is_q ? q_norm_w : k_norm_w;
      double ss = 0;
      for (int d = 0; d < hd; ++d) {
        y[d] = bf2f(src[d]);
        ss += static_cast<double>(y[d]) * y[d];
      }
      if (!nw.empty()) {
        const float rstd = 1.f / std::sqrt(static_cast<float>(ss / hd) + eps);
        for (int d = 0; d < hd; ++d) y[d] = rbf(nw[d] * rbf(y[d] * rstd));
      }
      if (!is_q && slot < 0) continue;
      for (int i = 0; i < half; ++i) {
        const float ang = static_cast<float>(positions[t]) * inv_freq[i];
        const float cs = rbf(std::cos(ang) * attention_scaling), sn = rbf(std::sin(ang) * attention_scaling);
        const float o1 = rbf(rbf(y[i] * cs) + rbf(-y[i + half] * sn));
        const float o2 = rbf(rbf(y[i + half] * cs) + rbf(y[i] * sn));
        if (is_q) {
          q_out[(static_cast<size_t>(t) * nh + h) * hd + i] = f2bf(o1);
          q_out[(static_cast<size_t>(t) * nh + h) * hd + i + half] = f2bf(o2);
        } else {
          kv.put(true, kv.index(blk, h - nh, off, i), o1);
          kv.put(true, kv.index(blk, h - nh, off, i + half), o2);
        }
      }
    }
  }
}

void attention_row(const uint16_t* q, int nh, int ctx, const int32_t* bt, const KvHost& kv, float scale, float* out) {
  const int hd = kv.hd, group = nh / kv.nkv;
  std::vector<double> s(ctx);
  for (int h = 0; h < nh; ++h) {
    const int g = h / group;
    double mx = -1e300;
    for (int t = 0; t < ctx; ++t) {
      double dot = 0;
      const float* kr = &kv.kf[kv.index(bt[t / kv.block_size], g, t % kv.block_size, 0)];
      for (int d = 0; d < hd; ++d) dot += static_cast<double>(bf2f(q[h * hd + d])) * kr[d];
      s[t] = dot * scale;
      mx = std::max(mx, s[t]);
    }
    double den = 0;
    for (int t = 0; t < ctx; ++t) den += (s[t] = std::exp(s[t] - mx));
    std::vector<double> acc(hd, 0.0);
    for (int t = 0; t < ctx; ++t) {
      const float* vr = &kv.vf[kv.index(bt[t / kv.block_size], g, t % kv.block_size, 0)];
      for (int d = 0; d < hd; ++d) acc[d] += s[t] * vr[d];
    }
    for (int d = 0; d < hd; ++d) out[h * hd + d] = static_cast<float>(acc[d] / den);
  }
}

VF linear_act(const V16& x, const VF* norm_w, float eps, const V16* act_scale, int M, int K) {
  VF a(static_cast<size_t>(M) * K);
  for (int m = 0; m < M; ++m) {
    float rstd = 1.f;
    if (norm_w) {
      double ss = 0;
      for (int k = 0; k < K; ++k) {
        const float f = bf2f(x[static_cast<size_t>(m) * K + k]);
        ss += static_cast<double>(f) * f;
      }
      rstd = 1.f / std::sqrt(static_cast<float>(ss / K) + eps);
    }
    for (int k = 0; k < K; ++k) {
      float f = bf2f(x[static_cast<size_t>(m) * K + k]);
      if (norm_w) f = rbf((*norm_w)[k] * rbf(f * rstd));
      if (act_scale) f = rbf(f * bf2f((*act_scale)[k]));
      a[static_cast<size_t>(m) * K + k] = f;
    }
  }
  return a;
}

float HostWeight::weight(int n, int k) const {
  const size_t i = static_cast<size_t>(n) * K + k;
  switch (format) {
    case WeightFormat::bf16: return bf2f(bf16[i]);
    case WeightFormat::int8_wo:
    case WeightFormat::int8_sq: return static_cast<float>(i8[i]);
    case WeightFormat::int4_awq: {
      const uint8_t b = i4[static_cast<size_t>(n) * (K / 2) + k / 2];
      const float q = static_cast<float>((k & 1) ? (b >> 4) : (b & 0xF));
      const int ng = (K + group_size - 1) / group_size;
      const size_t gi = static_cast<size_t>(n) * ng + k / group_size;
      const float z = group_zero.empty() ? 8.f : static_cast<float>(group_zero[gi]);
      const float s = rbf(group_scale[gi]);
      return int4_fp32_groups ? (q - z) * s : rbf((q - z) * s);
    }
    case WeightFormat::fp8: return harness::e4m32f(e4m3[i]);
  }
  return 0;
}

float quantize_act_row(float* v, int K, bool fp8, float x_scale) {
  if (fp8) {
    for (int k = 0; k < K; ++k) v[k] = harness::e4m32f(harness::f2e4m3(v[k] / x_scale));
    return x_scale;
  }
  float amax = 0;
  for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(v[k]));
  const float div = amax > 0 ? amax / 127.f : 1.f;
  for (int k = 0; k < K; ++k) v[k] = harness::f2i8(v[k] / div);
  return amax / 127.f;
}

void linear(const V16& x, const VF* norm_w, float eps, const V16* act_scale, const HostWeight& w, Epilogue epi,
            bool f32_out, int M, VF& y) {
  const int N = w.N, K = w.K;
  VF a = linear_act(x, norm_w, eps, act_scale, M, K);
  std::vector<float> row_scale(M, 1.f);
  if (w.format == WeightFormat::fp8 || w.format == WeightFormat::int8_sq) {
    const bool fp8 = w.format == WeightFormat::fp8;
    for (int m = 0; m < M; ++m) {
      const float s = quantize_act_row(&a[static_cast<size_t>(m) * K], K, fp8, w.x_scale);
      row_scale[m] = fp8 ? w.x_scale * w.w_scale : s;
    }
  }
  // Dequantized weights once (the inner loop would otherwise dominate the test time).
  std::vector<float> wd(static_cast<size_t>(N) * K);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) wd[static_cast<size_t>(n) * K + k] = w.weight(n, k);
  VF v(static_cast<size_t>(M) * N);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double acc = 0;
      const float* ar = &a[static_cast<size_t>(m) * K];
      const float* wr = &wd[static_cast<size_t>(n) * K];
      for (int k = 0; k < K; ++k) acc += static_cast<double>(ar[k]) * wr[k];
      float s = row_scale[m];
      if (w.format == WeightFormat::int8_wo || w.format == WeightFormat::int8_sq) s *= w.channel_scale[n];
      v[static_cast<size_t>(m) * N + n] = static_cast<float>(acc * s);
    }
  if (epi == Epilogue::swiglu) {
    y.assign(static_cast<size_t>(M) * (N / 2), 0);
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < N / 2; ++j) {
        const float g = rbf(v[static_cast<size_t>(m) * N + 2 * j]), u = rbf(v[static_cast<size_t>(m) * N + 2 * j + 1]);
        y[static_cast<size_t>(m) * (N / 2) + j] = rbf(silu_bf16(g) * u);
      }
  } else if (epi == Epilogue::residual_add) {
    for (size_t i = 0; i < v.size(); ++i) y[i] = rbf(y[i] + rbf(v[i]));
  } else {
    y.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) y[i] = f32_out ? v[i] : rbf(v[i]);
  }
}

void lora_add(const V16& x, int in, const std::vector<std::vector<const LoraProjHost*>>& proj, const int* out,
              const int* offset, int stride, int ldy, V16& y) {
  for (size_t m = 0; m < proj.size(); ++m)
    for (size_t i = 0; i < proj[m].size(); ++i) {
      const LoraProjHost* p = proj[m][i];
      if (!p || p->rank == 0) continue;
      std::vector<float> t(p->rank);
      for (int r = 0; r < p->rank; ++r) {
        double acc = 0;
        for (int k = 0; k < in; ++k) acc += static_cast<double>(bf2f(x[m * in + k])) * bf2f(p->a[static_cast<size_t>(r) * in + k]);
        t[r] = static_cast<float>(acc);
      }
      for (int j = 0; j < out[i]; ++j) {
        double acc = 0;
        for (int r = 0; r < p->rank; ++r) acc += static_cast<double>(t[r]) * bf2f(p->b[static_cast<size_t>(j) * p->rank + r]);
        uint16_t& at = y[m * ldy + offset[i] + static_cast<size_t>(j) * stride];
        at = f2bf(bf2f(at) + p->scale * static_cast<float>(acc));
      }
    }
}

}  // namespace ref

