// kernelSelfTest's checks of the quantized formats' CPU kernels (int8_wo, int4, fp8, int8_sq):
// decode rows against batched ones, the activation quantizers against their definitions, int8_sq
// and fp8 against the scalar level.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "addon/kernel_tests.h"
#include "grpst/linear.h"
#include "grpst/thread_pool.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_round.h"

namespace grpst::addon {

namespace {
// A one-byte-weight linear over w [N, K] (int8_wo, int8_sq, fp8): what the checks vary.
LinearWeight byte_linear(WeightFormat fmt, const void* w, int N, int K, const float* scales, float input_scale = 0.05f) {
  LinearWeight lw;
  lw.fmt = fmt;
  lw.out_features = N;
  lw.in_features = K;
  lw.w = w;
  lw.ldw = K;
  lw.scales = scales;
  lw.input_scale = input_scale;
  return lw;
}

// A linear on levels k and ref over x [M, in]: the worst |y - y_ref| over the largest |y_ref|.
double worst_on(const LinearWeight& lw, const CpuKernels& k, const CpuKernels& ref, ThreadPool& pool,
                const std::vector<float>& x, int M) {
  const int N = lw.out_features;
  std::vector<float> y(size_t(M) * N), yr(size_t(M) * N);
  linear_forward(lw, x.data(), y.data(), M, k, pool);
  linear_forward(lw, x.data(), yr.data(), M, ref, pool);
  double peak = 0, diff = 0;
  for (size_t i = 0; i < y.size(); i++) {
    peak = std::max(peak, std::abs(double(yr[i])));
    diff = std::max(diff, std::abs(double(y[i]) - double(yr[i])));
  }
  return peak > 0 ? diff / peak : diff;
}

// A linear on levels k and ref at 1-70 rows of random x (every path: one row, row tiles, blocks):
// the worst of worst_on over the row counts.
double worst_against(const LinearWeight& lw, const CpuKernels& k, const CpuKernels& ref, ThreadPool& pool, Rand& r) {
  double worst = 0;
  for (int M : {1, 2, 5, 8, 9, 25, 70})
    worst = std::max(worst, worst_on(lw, k, ref, pool, r.floats(size_t(M) * lw.in_features, -4, 4), M));
  return worst;
}
}  // namespace

// int8_wo, fp8, int4 and int8_sq linears: decode rows (1-64, weights widened in registers, row
// tiles of up to 7) against the same rows among 70 (weights decoded into fp32 blocks; the
// activation operand made in one piece per thread: quant::rows_in_pieces), bit for bit. K = 100
// has a partial last vector (int4: groups of 20, not whole vectors: the fp32 blocks either way);
// int4 also in groups of 16, and of 64, 128 and 256 (AVX-512: the nibbles' order, x permuted);
// K = 16,384 splits the 70 rows into chunks of x (gemm_f32w); fp8 at K = 4,128 widens its
// weights in registers at 70 rows too (long rows: no block), with a 32-value tail.
bool test_quant_decode_rows(const CpuKernels& k, Rand& r) {
  ThreadPool pool(2);
  bool same = true;
  struct Case {
    WeightFormat fmt;
    int N, K, group;
  };
  const Case cases[] = {{WeightFormat::INT8_WO, 37, 100, 0}, {WeightFormat::INT8_WO, 64, 256, 0},
                        {WeightFormat::FP8, 37, 100, 0},     {WeightFormat::FP8, 64, 256, 0},
                        {WeightFormat::INT4, 37, 100, 20},   {WeightFormat::INT4, 19, 128, 16},
                        {WeightFormat::INT4, 64, 256, 64},   {WeightFormat::INT4, 37, 384, 128},
                        {WeightFormat::INT4, 10, 512, 256},  {WeightFormat::INT4, 6, 16384, 128},
                        {WeightFormat::INT8_WO, 5, 16384, 0},  {WeightFormat::FP8, 9, 4128, 0},
                        {WeightFormat::INT8_SQ, 37, 100, 0},
                        {WeightFormat::INT8_SQ, 64, 256, 0}};
  for (const Case& c : cases) {
    const WeightFormat fmt = c.fmt;
    const int N = c.N, K = c.K, groups = c.group ? K / c.group : 1;
    const bool int4 = fmt == WeightFormat::INT4;
    std::vector<uint8_t> w(size_t(N) * (int4 ? K / 2 : K));
    for (auto& b : w) {
      b = uint8_t(r.gen() & 0xff);
      if (fmt == WeightFormat::FP8 && (b & 0x7f) == 0x7f) b &= 0xfe;  // no NaN codes
      if (fmt == WeightFormat::INT8_SQ && b == 0x80) b = 0x81;         // int8_sq weights are in [-127, 127]
    }
    std::vector<float> scales(size_t(N) * groups);
    for (auto& v : scales) v = r.uniform(0.001f, 0.01f);
    std::vector<uint8_t> zeros(size_t(N) * groups);
    for (auto& z : zeros) z = uint8_t(r.gen() & 0x0f);
    LinearWeight lw;
    lw.fmt = fmt;
    lw.out_features = N;
    lw.in_features = K;
    lw.w = w.data();
    lw.ldw = int4 ? K / 2 : K;
    lw.scales = scales.data();
    lw.zeros = int4 ? zeros.data() : nullptr;
    lw.group_size = c.group;
    lw.input_scale = 0.05f;
    const int all = 70;  // past kQuantGemvMaxRows: fp32 weight blocks
    auto x = r.floats(size_t(all) * K, -4, 4);
    std::vector<float> y(size_t(all) * N);
    linear_forward(lw, x.data(), y.data(), all, k, pool);
    for (int M : {1, 2, 3, 4, 5, 6, 7, 9, 14, 64}) {
      std::vector<float> part(size_t(M) * N);
      linear_forward(lw, x.data() + size_t(all - M) * K, part.data(), M, k, pool);
      if (!std::equal(part.begin(), part.end(), y.begin() + size_t(all - M) * N)) same = false;
    }
  }
  return same;
}

// The activation quantizers of a level (fp8's e4m3 rounding, int8_sq's per-token int8) against
// quant_round.h's definition, bit for bit (signed zeros apart): e4m3 at every code's value, the
// midpoints between neighbouring codes (ties go to the even mantissa) and the floats either side
// of them, past the saturation edge, e4m3 and fp32 subnormals, zeros of both signs, and values
// over thirty binades; int8 on rows of exact .5 ties and random rows. Rows have vector tails
// and a stride past their length.
bool test_activation_quantizers(const CpuKernels& k, Rand& r) {
  const QuantKernels& q = quant_kernels(k.level);
  std::vector<float> codes;  // the positive e4m3 values, ascending
  for (int e = 0; e < 16; e++)
    for (int m = 0; m < 8; m++)
      if (!(e == 15 && m == 7)) codes.push_back(e == 0 ? float(m) / 512 : (1 + float(m) / 8) * std::ldexp(1.0f, e - 7));
  std::vector<float> v = {0.0f, -0.0f, 448.0f, 463.9f, 464.0f, 480.0f, 1e4f, 1e30f, 1e-40f, -1e-42f, 0x1p-10f, 0x1p-7f};
  for (size_t i = 0; i < codes.size(); i++) {
    v.push_back(codes[i]);
    if (i + 1 < codes.size()) {
      const float mid = (codes[i] + codes[i + 1]) / 2;
      v.insert(v.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)});
    }
  }
  for (int i = 0; i < 500; i++) v.push_back(std::ldexp(r.uniform(1, 2), int(r.gen() % 30) - 20));
  const size_t n = v.size();
  for (size_t i = 0; i < n; i++) v.push_back(-v[i]);
  bool same = true;
  auto bits_equal = [](float a, float b) {
    uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return x == y;
  };
  for (const float scale : {1.0f, 0.37f}) {
    const int K = int(v.size()), M = 2, ldx = K + 5;
    std::vector<float> x(size_t(M) * ldx, 0.0f), out(size_t(M) * K);
    for (int m = 0; m < M; m++)
      for (int i = 0; i < K; i++) x[size_t(m) * ldx + i] = v[size_t((i + 7 * m) % K)] * scale;
    q.round_rows_e4m3(x.data(), ldx, M, K, scale, out.data());
    const float inv = 1.0f / scale;
    for (int m = 0; m < M; m++)
      for (int i = 0; i < K; i++)
        if (!bits_equal(out[size_t(m) * K + i], quant_round::e4m3(x[size_t(m) * ldx + i] * inv))) same = false;
  }
  // int8: a row whose amax is 127 (scale 1: x.5 values are exact ties), then random rows
  const int K = 1031, M = 3, ldx = K + 3;
  std::vector<float> x(size_t(M) * ldx, 0.0f);
  x[0] = 127.0f;
  for (int i = 1; i < K; i++) x[size_t(i)] = float(int(r.gen() % 253) - 126) + (i % 2 ? 0.5f : 0.0f);
  for (int m = 1; m < M; m++)
    for (int i = 0; i < K; i++) x[size_t(m) * ldx + i] = r.uniform(-3, 3);
  std::vector<int8_t> xq(size_t(M) * K);
  std::vector<float> xs(M);
  q.quantize_rows_int8(x.data(), ldx, M, K, xq.data(), xs.data());
  for (int m = 0; m < M; m++) {
    float amax = 0;
    for (int i = 0; i < K; i++) amax = std::max(amax, std::fabs(x[size_t(m) * ldx + i]));
    if (!bits_equal(xs[size_t(m)], amax / 127.0f)) same = false;
    const float inv = 1.0f / (amax / 127.0f);
    for (int i = 0; i < K; i++)
      if (xq[size_t(m) * K + i] != quant_round::int8(x[size_t(m) * ldx + i], inv)) same = false;
  }
  return same;
}

// int8_sq linears (per-token int8 activations, int32 products) against the scalar level, bit for
// bit: the products are exact whatever the kernel (the amx level's tiles included) and the
// quantizer gives the scalar definition's bits, so every level must give the same y. Shapes with
// K tails, N tails and 1-40 rows.
bool test_int8_sq_exact(const CpuKernels& k, const CpuKernels& ref, Rand& r) {
  ThreadPool pool(2);
  bool same = true;
  for (const auto& [N, K] : {std::pair{37, 100}, std::pair{64, 256}, std::pair{48, 1000}, std::pair{130, 64}}) {
    std::vector<int8_t> w(size_t(N) * K);
    for (auto& b : w) b = int8_t(int(r.gen() % 255) - 127);
    std::vector<float> scales = r.floats(size_t(N), 0.001f, 0.01f);
    const LinearWeight lw = byte_linear(WeightFormat::INT8_SQ, w.data(), N, K, scales.data(), 1.0f);
    for (int M : {1, 2, 3, 5, 6, 7, 17, 40}) {  // (every tile height and tail of the VNNI tiles)
      const auto x = r.floats(size_t(M) * K, -3, 3);
      std::vector<float> y(size_t(M) * N), yr(size_t(M) * N);
      linear_forward(lw, x.data(), y.data(), M, k, pool);
      linear_forward(lw, x.data(), yr.data(), M, ref, pool);
      if (std::memcmp(y.data(), yr.data(), y.size() * sizeof(float)) != 0) same = false;
    }
  }
  return same;
}

// int8_wo linears against the scalar level (fp32 products). The amx level multiplies x's three
// int8 parts exactly in int32 (linear_int8_wo.cpp), which leaves about 2^-24 of a row's largest
// value of x, so its y differs from fp32 sums by their own order's size. First every weight code
// (-127..127: grpst's int8 weights) alone in its row at a position that walks over whole 64-column
// chunks and the tail, at 1, 17 and 70 rows (one product per output: a code read wrong, or paired
// with the wrong activation, is off by 1/127 of the peak or more); then random codes with K and N
// tails, and rows whose values span six orders of magnitude (an outlier beside small values). The
// worst |y - y_ref| over the largest |y_ref| of a case, ~1e-7.
double test_int8wo_vs_scalar(const CpuKernels& k, const CpuKernels& ref, Rand& r) {
  ThreadPool pool(2);
  double worst = 0;
  auto measure = [&](const LinearWeight& lw, int M, bool outliers) {
    const int K = lw.in_features;
    auto x = r.floats(size_t(M) * K, -4, 4);
    if (outliers)
      for (int m = 0; m < M; m++) {
        x[size_t(m) * K + size_t(m) % K] = 2000.f;  // one large value a row
        for (int j = 1; j < K; j += 3) x[size_t(m) * K + j] *= 1e-3f;
      }
    worst = std::max(worst, worst_on(lw, k, ref, pool, x, M));
  };
  {
    const int N = 255, K = 136;  // two whole 64-column chunks and a tail of 8
    std::vector<int8_t> w(size_t(N) * K, 0);
    std::vector<float> scales(N, 0.01f);
    for (int code = 0; code < N; code++) w[size_t(code) * K + code % K] = int8_t(code - 127);
    for (int M : {1, 17, 70}) measure(byte_linear(WeightFormat::INT8_WO, w.data(), N, K, scales.data()), M, false);
  }
  for (const auto& [N, K] : {std::pair{37, 100}, std::pair{64, 256}, std::pair{9, 1000}, std::pair{40, 2048}}) {
    std::vector<int8_t> w(size_t(N) * K);
    for (auto& b : w) b = int8_t(int(r.gen() % 255) - 127);
    std::vector<float> scales(N);
    for (auto& v : scales) v = r.uniform(0.001f, 0.01f);
    const LinearWeight lw = byte_linear(WeightFormat::INT8_WO, w.data(), N, K, scales.data());
    for (int M : {1, 2, 5, 8, 9, 25, 70}) measure(lw, M, false);
    for (int M : {1, 9, 70}) measure(lw, M, true);
  }
  return worst;
}

// fp8 linears against the scalar level. First every e4m3 code but NaN alone in its weight row, at
// a position that walks over whole chunks and the tail (one product per output, so every level
// must give the scalar level's bits: a code widened wrong, or a weight paired with the wrong
// activation, shows; subnormals included), at 1, 5 and 70 rows (each of a level's paths); then random codes
// with K and N tails, where only the order of the fp32 sums differs: the worst |y - y_ref| over
// the largest |y_ref| of the case, ~1e-7. Returns that, or 1 when a single product differs.
double test_fp8_vs_scalar(const CpuKernels& k, const CpuKernels& ref, Rand& r) {
  ThreadPool pool(2);
  float scale = 0.01f;
  auto linear = [&](const std::vector<uint8_t>& w, int N, int K) { return byte_linear(WeightFormat::FP8, w.data(), N, K, &scale); };
  {
    const int N = 256, K = 136;  // two whole 64-value chunks (widened by table lookups) and a tail
    std::vector<uint8_t> w(size_t(N) * K, 0);
    for (int code = 0; code < N; code++) w[size_t(code) * K + code % K] = (code & 0x7f) == 0x7f ? 0 : uint8_t(code);
    const LinearWeight lw = linear(w, N, K);
    for (int M : {1, 5, 70}) {
      const auto x = r.floats(size_t(M) * K, 0.5f, 4);
      std::vector<float> y(size_t(M) * N), yr(size_t(M) * N);
      linear_forward(lw, x.data(), y.data(), M, k, pool);
      linear_forward(lw, x.data(), yr.data(), M, ref, pool);
      if (std::memcmp(y.data(), yr.data(), y.size() * sizeof(float)) != 0) return 1;
    }
  }
  double worst = 0;
  for (const auto& [N, K] : {std::pair{37, 100}, std::pair{64, 256}, std::pair{9, 1000}}) {
    std::vector<uint8_t> w(size_t(N) * K);
    for (auto& b : w) {
      b = uint8_t(r.gen() & 0xff);
      if ((b & 0x7f) == 0x7f) b &= 0xfe;  // no NaN codes
    }
    worst = std::max(worst, worst_against(linear(w, N, K), k, ref, pool, r));
  }
  return worst;
}

namespace {
// An int4 linear over N x K random nibbles, scales and zero points (kept in `store`).
struct Int4Weights {
  std::vector<uint8_t> w, zeros;
  std::vector<float> scales;
};
LinearWeight int4_linear(Int4Weights& store, int N, int K, int group, Rand& r) {
  const int groups = K / group;
  store.w.resize(size_t(N) * K / 2);
  store.zeros.resize(size_t(N) * groups);
  store.scales.resize(size_t(N) * groups);
  for (auto& b : store.w) b = uint8_t(r.gen() & 0xff);
  for (auto& z : store.zeros) z = uint8_t(r.gen() & 0x0f);
  for (auto& v : store.scales) v = r.uniform(0.001f, 0.01f);
  LinearWeight lw;
  lw.fmt = WeightFormat::INT4;
  lw.out_features = N;
  lw.in_features = K;
  lw.w = store.w.data();
  lw.ldw = K / 2;
  lw.scales = store.scales.data();
  lw.zeros = store.zeros.data();
  lw.group_size = group;
  return lw;
}
}  // namespace

// int4 linears against the scalar level (the natural order) with random nibbles, scales and zero
// points: groups of 64, 128 and 256 take the nibbles' order on AVX-512 (activations permuted to
// match) and x's three int8 parts on amx (exact int32 sums per group: about 2^-24 of a row's
// largest value left), groups of 20 the natural order; sums differ only in their order and that
// remainder, so the worst |y - y_ref| over the largest |y_ref| of a case is ~1e-6 (a weight read
// against the wrong activation makes it order 1). Rows with an outlier beside values a thousand
// times smaller too (the parts' remainder is relative to the row's largest value).
double test_int4_vs_scalar(const CpuKernels& k, const CpuKernels& ref, Rand& r) {
  ThreadPool pool(2);
  double worst = 0;
  struct Case {
    int N, K, group;
  };
  for (const Case& c : {Case{37, 384, 128}, Case{9, 1024, 256}, Case{21, 100, 20}, Case{16, 256, 64}}) {
    Int4Weights store;
    const LinearWeight lw = int4_linear(store, c.N, c.K, c.group, r);
    worst = std::max(worst, worst_against(lw, k, ref, pool, r));
    for (int M : {1, 5, 70}) {
      auto x = r.floats(size_t(M) * c.K, -4, 4);
      for (int m = 0; m < M; m++) {
        x[size_t(m) * c.K + size_t(7 * m) % c.K] = 2000.f;
        for (int j = 1; j < c.K; j += 3) x[size_t(m) * c.K + j] *= 1e-3f;
      }
      worst = std::max(worst, worst_on(lw, k, ref, pool, x, M));
    }
  }
  return worst;
}

// int4 projections of one x in one call (linear_forward_multi shares the first prepared operand)
// against each alone, bit for bit, at 1, 5 and 70 rows, in both orders: groups of 64 and 128 (on
// amx both read the same int8 parts; on AVX-512 their nibble units differ, so the second weight
// permutes x itself) and groups of 32 beside 128 (the natural order: no operand of its own).
bool test_int4_shared_operands(const CpuKernels& k, Rand& r) {
  ThreadPool pool(2);
  const int K = 512;
  bool same = true;
  for (const auto& [g0, g1] : {std::pair{128, 32}, std::pair{32, 128}, std::pair{64, 128}, std::pair{128, 64}}) {
    Int4Weights s0, s1;
    const LinearWeight w0 = int4_linear(s0, 40, K, g0, r), w1 = int4_linear(s1, 24, K, g1, r);
    for (int M : {1, 5, 70}) {
      const auto x = r.floats(size_t(M) * K, -4, 4);
      std::vector<float> a0(size_t(M) * 40), a1(size_t(M) * 24), b0(a0.size()), b1(a1.size());
      linear_forward(w0, x.data(), a0.data(), M, k, pool);
      linear_forward(w1, x.data(), a1.data(), M, k, pool);
      const LinearWeight* ws[] = {&w0, &w1};
      float* ys[] = {b0.data(), b1.data()};
      linear_forward_multi(ws, ys, 2, x.data(), M, k, pool);
      if (a0 != b0 || a1 != b1) same = false;
    }
  }
  return same;
}

}  // namespace grpst::addon
