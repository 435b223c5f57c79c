// kernelSelfTest(level): every kernel of one level against the scalar twin on random data,
// plus the batch-invariance property the scheduler relies on (an output row does not change
// with the number of rows or the column split). Driven by test/native/kernels.test.ts.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "grpst/common.h"
#include "grpst/cpu_kernels.h"
#include "grpst/kv_quant.h"
#include "grpst/linear.h"
#include "grpst/thread_pool.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_round.h"
#include "addon/kernel_tests.h"

namespace grpst::addon {

namespace {


double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num = std::max(num, double(std::fabs(a[i] - b[i])));
    den = std::max(den, double(std::fabs(b[i])));
  }
  return num / std::max(den, 1e-30);
}

double test_gemm(const CpuKernels& k, const CpuKernels& ref, Rand& r, bool& invariant) {
  double worst = 0;
  // 2-7 rows take few-row tiles (one or two weight rows interleaved by K, AVX2 splitting 7 rows 4 + 3).
  const int shapes[][3] = {{1, 37, 64}, {5, 19, 100}, {9, 64, 1024}, {3, 7, 13}, {17, 33, 160}, {7, 21, 2100}, {2, 9, 2500}, {6, 11, 50}};
  for (auto& s : shapes) {
    const int M = s[0], N = s[1], K = s[2];
    auto x = r.floats(size_t(M) * K);
    auto w = r.bf16(size_t(N) * K);
    std::vector<float> y(size_t(M) * N), yr(size_t(M) * N);
    k.gemm_bf16(x.data(), K, w.data(), K, y.data(), N, M, 0, N, K);
    ref.gemm_bf16(x.data(), K, w.data(), K, yr.data(), N, M, 0, N, K);
    worst = std::max(worst, rel_err(y, yr));
    // Each row alone, with an odd column split: bit-identical to the batched result.
    for (int m = 0; m < M; m++) {
      std::vector<float> row(N);
      const int cut = N / 3;
      k.gemm_bf16(x.data() + size_t(m) * K, K, w.data(), K, row.data(), N, 1, 0, cut, K);
      k.gemm_bf16(x.data() + size_t(m) * K, K, w.data(), K, row.data(), N, 1, cut, N, K);
      for (int n = 0; n < N; n++)
        if (row[n] != y[size_t(m) * N + n]) invariant = false;
    }
  }
  return worst;
}

/** A random pool of `n` elements of `elem`, and what each element reads as (value * scale) in fp32. */
struct TestPool {
  std::vector<float> f32;         // F32 pools, and the values every other pool reads as
  std::vector<uint16_t> bf16;
  std::vector<uint8_t> fp8;
  std::vector<int8_t> i8;
  float scale = 1.0f;
  const void* data(KvElem e) const {
    switch (e) {
      case KvElem::BF16: return bf16.data();
      case KvElem::FP8: return fp8.data();
      case KvElem::INT8: return i8.data();
      default: return f32.data();
    }
  }
};

TestPool make_pool(Rand& r, KvElem elem, size_t n) {
  TestPool p;
  p.f32 = r.floats(n, -3, 3);
  // Scales as calibration gives them (amax / 448 or / 127), so codes span their whole range.
  p.scale = elem == KvElem::FP8 ? 3.0f / 448 : elem == KvElem::INT8 ? 3.0f / 127 : 1.0f;
  for (size_t i = 0; i < n; i++) {
    float& x = p.f32[i];
    switch (elem) {
      case KvElem::BF16:
        p.bf16.push_back(f32_to_bf16(x));
        x = bf16_to_f32(p.bf16.back());
        break;
      case KvElem::FP8:
        p.fp8.push_back(kv_quantize_fp8(x, p.scale));
        x = e4m3_to_f32(p.fp8.back()) * p.scale;
        break;
      case KvElem::INT8:
        p.i8.push_back(kv_quantize_int8(x, p.scale));
        x = float(p.i8.back()) * p.scale;
        break;
      default: break;
    }
  }
  return p;
}

/**
 * One attention call's arguments: `rows` query rows of G heads (q and out [rows][G][D]) against KV
 * head `head` of `nkv` in a paged pool of `bs`-key blocks, the first row at context `ctx`.
 */
AttentionArgs paged_attention_args(const float* q, int G, int D, int rows, const void* k_pool, const void* v_pool, KvElem elem,
                                   int bs, int nkv, int head, const int32_t* table, int ctx, float* out, float* scratch) {
  AttentionArgs a{};
  a.q = q;
  a.group = G;
  a.head_dim = D;
  a.rows = rows;
  a.row_stride = int64_t(G) * D;
  a.k_pool = k_pool;
  a.v_pool = v_pool;
  a.kv_elem = elem;
  a.block_stride = int64_t(nkv) * bs * D;
  a.head_offset = int64_t(head) * bs * D;
  a.block_size = bs;
  a.block_table = table;
  a.ctx_len = ctx;
  a.scale = 1.0f / std::sqrt(float(D));
  a.out = out;
  a.scratch = scratch;
  return a;
}

/**
 * The definition, in double precision and straight from the pool's values (code * scale for
 * quantized pools): out[r][g] = softmax_j(scale * q[r][g] . k_j) . v_j over keys j < ctx + r.
 * Independent of the kernels' tiling, so it checks the online softmax across key tiles.
 */
std::vector<float> naive_attention(const AttentionArgs& a, const std::vector<float>& kf, const std::vector<float>& vf) {
  const int G = a.group, D = a.head_dim, bs = a.block_size;
  std::vector<float> out(size_t(a.rows) * G * D);
  for (int r = 0; r < a.rows; r++)
    for (int g = 0; g < G; g++) {
      const int ctx = a.ctx_len + r;
      const float* q = a.q + r * a.row_stride + int64_t(g) * D;
      std::vector<double> s(ctx), o(D, 0.0);
      double mx = -1e300, sum = 0;
      for (int j = 0; j < ctx; j++) {
        const int64_t base = int64_t(a.block_table[j / bs]) * a.block_stride + a.head_offset;
        double dot = 0;
        for (int d = 0; d < D; d++) dot += double(q[d]) * kf[base + int64_t(d) * bs + j % bs];
        s[j] = dot * a.scale;
        mx = std::max(mx, s[j]);
      }
      for (int j = 0; j < ctx; j++) sum += (s[j] = std::exp(s[j] - mx));
      for (int j = 0; j < ctx; j++) {
        const int64_t base = int64_t(a.block_table[j / bs]) * a.block_stride + a.head_offset;
        for (int d = 0; d < D; d++) o[d] += s[j] / sum * vf[base + int64_t(j % bs) * D + d];
      }
      for (int d = 0; d < D; d++) out[(size_t(r) * G + g) * D + d] = float(o[d]);
    }
  return out;
}

/**
 * Attention over a pool of `elem` on several shapes: the level against the scalar twin (returned,
 * max relative error), against the definition (vs_naive), rows one by one against rows together
 * (row_invariant), and, for quantized pools, against fp32 attention over the values the codes
 * stand for, code * scale (vs_float).
 */
double test_attention(const CpuKernels& k, const CpuKernels& ref, Rand& r, KvElem elem, bool& row_invariant,
                      double& vs_naive, double* vs_float = nullptr) {
  double worst = 0;
  // G, D, bs, ctx of row 0, rows; key tiles are 64 keys (128 with AVX-512): rows across a tile's edge (120 + 16),
  // blocks across it (bs 5), a long context with the running max moving.
  const int cases[][5] = {{2, 128, 16, 40, 1}, {3, 24, 16, 300, 13}, {1, 16, 4, 5, 3}, {20, 32, 16, 33, 2},
                          {2, 128, 16, 200, 16}, {8, 64, 16, 90, 7}, {2, 32, 16, 120, 16}, {4, 16, 5, 130, 9},
                          {1, 8, 16, 700, 3}};
  for (auto& c : cases) {
    const int G = c[0], D = c[1], bs = c[2], L0 = c[3], R = c[4];
    const int L = L0 + R - 1;  // the last row's context
    const int nkv = 2, blocks = (L + bs - 1) / bs + 3;
    const size_t pool_elems = size_t(blocks) * nkv * bs * D;
    const TestPool kp = make_pool(r, elem, pool_elems), vp = make_pool(r, elem, pool_elems);
    std::vector<int32_t> table;  // scattered blocks
    for (int b = 0; b < (L + bs - 1) / bs; b++) table.push_back((b * 5 + 2) % blocks);
    auto q = r.floats(size_t(R) * G * D, -2, 2);
    const size_t out_elems = size_t(R) * G * D;
    std::vector<float> out(out_elems), outr(out_elems), single(out_elems);
    std::vector<float> scratch(attention_scratch_floats(L));
    AttentionArgs a = paged_attention_args(q.data(), G, D, R, kp.data(elem), vp.data(elem), elem, bs, nkv, 1, table.data(), L0,
                                           out.data(), scratch.data());
    a.k_scale = kp.scale;
    a.v_scale = vp.scale;
    k.attention(a);
    a.out = outr.data();
    ref.attention(a);
    worst = std::max(worst, rel_err(out, outr));
    vs_naive = std::max(vs_naive, rel_err(out, naive_attention(a, kp.f32, vp.f32)));
    if (vs_float) {
      AttentionArgs f = a;
      f.k_pool = kp.f32.data();
      f.v_pool = vp.f32.data();
      f.kv_elem = KvElem::F32;
      f.k_scale = f.v_scale = 1.0f;
      std::vector<float> outf(out_elems);
      f.out = outf.data();
      ref.attention(f);
      *vs_float = std::max(*vs_float, rel_err(out, outf));
    }
    // Row by row: the same bits as all rows together.
    for (int row = 0; row < R; row++) {
      AttentionArgs one = a;
      one.rows = 1;
      one.q = q.data() + size_t(row) * G * D;
      one.out = single.data() + size_t(row) * G * D;
      one.ctx_len = L0 + row;
      k.attention(one);
    }
    if (single != out) row_invariant = false;
  }
  return worst;
}

/**
 * The KV cache quantizers against brute force: every e4m3 code round-trips; random values (and
 * the midpoints between neighbouring codes) go to the nearest code, ties to the even one, and
 * beyond 448 saturate; int8 rounds half to even and clamps at +-127. Returns the mismatches.
 */
int test_kv_rounding() {
  int bad = 0;
  std::vector<float> codes;  // value of each finite non-negative code 0x00..0x7e, increasing
  for (int c = 0; c <= 0x7e; c++) {
    codes.push_back(e4m3_to_f32(uint8_t(c)));
    if (f32_to_e4m3(codes.back()) != c || f32_to_e4m3(-codes.back()) != (c | 0x80)) bad++;
    if (c > 0 && !(codes[c] > codes[c - 1])) bad++;
  }
  auto nearest = [&](float x) {
    const float a = std::fabs(x);
    int best = 0;
    for (int c = 1; c <= 0x7e; c++) {
      const float d = std::fabs(codes[c] - a), db = std::fabs(codes[best] - a);
      if (d < db || (d == db && (c & 1) == 0)) best = c;
    }
    return uint8_t((std::signbit(x) ? 0x80 : 0) | best);
  };
  std::mt19937 gen(77);
  std::vector<float> xs = {0.0f, 448.0f, 449.0f, 464.0f, 1e9f, -1e9f, 1e-12f};
  for (int c = 0; c < 0x7e; c++) xs.push_back((codes[c] + codes[c + 1]) / 2);  // exact midpoints: ties
  for (int i = 0; i < 20000; i++) {
    const float mag = std::ldexp(std::uniform_real_distribution<float>(1, 2)(gen), int(gen() % 24) - 14);
    xs.push_back(gen() % 2 ? mag : -mag);
  }
  for (float x : xs)
    if (f32_to_e4m3(x) != nearest(x)) bad++;
  const float int8_cases[][3] = {{2.5f, 1, 2}, {3.5f, 1, 4}, {-2.5f, 1, -2}, {1000, 1, 127}, {-1000, 1, -127},
                                 {0.74f, 0.5f, 1}, {-0.76f, 0.5f, -2}, {126.6f, 1, 127}};
  for (auto& c : int8_cases)
    if (kv_quantize_int8(c[0], c[1]) != int8_t(c[2])) bad++;
  return bad;
}

double test_rows(const CpuKernels& k, const CpuKernels& ref, Rand& r) {
  double worst = 0;
  for (int n : {1, 13, 64, 1000}) {
    auto x = r.floats(n), w = r.floats(n, 0.5f, 1.5f);
    std::vector<float> y(n), yr(n);
    k.rmsnorm(x.data(), w.data(), y.data(), n, 1e-6f);
    ref.rmsnorm(x.data(), w.data(), yr.data(), n, 1e-6f);
    worst = std::max(worst, rel_err(y, yr));
    auto g = r.floats(n, -8, 8), u = r.floats(n);
    k.silu_mul(g.data(), u.data(), y.data(), n);
    ref.silu_mul(g.data(), u.data(), yr.data(), n);
    worst = std::max(worst, rel_err(y, yr));
    // LoRA's B (A x) added to a projection's output: every rank count up to 24, Bt rows strided.
    for (int R : {1, 3, 16, 24}) {
      auto t = r.floats(R);
      std::vector<uint16_t> bt(size_t(R) * (n + 5));
      for (auto& b : bt) b = f32_to_bf16(r.floats(1)[0]);
      y = u;
      yr = u;
      k.rank_update_bf16(t.data(), R, bt.data(), n + 5, n, 0.37f, y.data());
      ref.rank_update_bf16(t.data(), R, bt.data(), n + 5, n, 0.37f, yr.data());
      worst = std::max(worst, rel_err(y, yr));
    }
  }
  return worst;
}

double test_softmax_sums(const CpuKernels& k, const CpuKernels& ref, Rand& r) {
  double worst = 0;
  for (int n : {1, 17, 151936}) {
    auto x = r.floats(n, -30, 30);
    float m, mr;
    double s, sr;
    k.max_and_sum_exp(x.data(), n, &m, &s);
    ref.max_and_sum_exp(x.data(), n, &mr, &sr);
    if (m != mr) return 1.0;
    worst = std::max(worst, std::fabs(s - sr) / sr);
  }
  return worst;
}

// Greedy's argmax against its definition (the lowest index of the largest entry, NaN and -inf
// never chosen, -1 when nothing is left): ties, NaN before the largest value, the largest value
// in the tail past the last full vector, banned rows. Mismatches counted.
int test_argmax(const CpuKernels& k, Rand& r) {
  auto definition = [](const std::vector<float>& x) {
    int best = -1;
    for (int i = 0; i < int(x.size()); i++)
      if (!std::isnan(x[i]) && x[i] != -INFINITY && (best < 0 || x[i] > x[size_t(best)])) best = i;
    return best;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  int mismatches = 0;
  auto check = [&](const std::vector<float>& x) { mismatches += k.argmax(x.data(), int(x.size())) != definition(x); };
  for (int n : {1, 5, 16, 17, 31, 151936}) {
    auto x = r.floats(size_t(n), -30, 30);
    check(x);
    x[size_t(n - 1)] = 40;  // the largest in the tail (or the only entry)
    check(x);
    x[size_t(n / 2)] = 40;  // a tie: the lower index wins
    check(x);
    x[0] = nan;  // NaN never wins, wherever it stands
    check(x);
    x[size_t(n / 2)] = -INFINITY;
    x[size_t(n - 1)] = -INFINITY;
    check(x);
    std::fill(x.begin(), x.end(), -INFINITY);
    check(x);
    x[size_t(n - 1)] = nan;
    check(x);  // nothing left: -1
    x[0] = -1e30f;
    check(x);
  }
  return mismatches;
}

}  // namespace

Napi::Value KernelSelfTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Error("kernelSelfTest(level) needs a level name");
  const CpuLevel level = parse_cpu_level(info[0].As<Napi::String>().Utf8Value());
  if (!cpu_supports(level)) throw Error("this CPU cannot run the " + info[0].As<Napi::String>().Utf8Value() + " kernels");
  const CpuKernels& k = cpu_kernels(level);
  const CpuKernels& ref = cpu_kernels(CpuLevel::Scalar);
  Rand r;
  bool invariant = true;
  Napi::Object o = Napi::Object::New(env);
  o.Set("gemmBf16", test_gemm(k, ref, r, invariant));
  o.Set("gemmBatchInvariant", invariant);
  bool rows_invariant = true;
  double quant_vs_float = 0;
  double vs_naive = 0;
  o.Set("attentionF32", test_attention(k, ref, r, KvElem::F32, rows_invariant, vs_naive));
  o.Set("attentionBf16", test_attention(k, ref, r, KvElem::BF16, rows_invariant, vs_naive));
  o.Set("attentionFp8", test_attention(k, ref, r, KvElem::FP8, rows_invariant, vs_naive, &quant_vs_float));
  o.Set("attentionInt8", test_attention(k, ref, r, KvElem::INT8, rows_invariant, vs_naive, &quant_vs_float));
  o.Set("attentionVsDefinition", vs_naive);
  o.Set("attentionQuantVsFloat", quant_vs_float);
  o.Set("attentionRowInvariant", rows_invariant);
  o.Set("kvQuantRounding", test_kv_rounding());
  o.Set("rowKernels", test_rows(k, ref, r));
  o.Set("maxSumExp", test_softmax_sums(k, ref, r));
  o.Set("argmaxMismatches", test_argmax(k, r));
  o.Set("quantDecodeRowsInvariant", test_quant_decode_rows(k, r));
  o.Set("activationQuantizersExact", test_activation_quantizers(k, r));
  o.Set("int8SqExact", test_int8_sq_exact(k, ref, r));
  o.Set("int8WoVsScalar", test_int8wo_vs_scalar(k, ref, r));
  o.Set("fp8VsScalar", test_fp8_vs_scalar(k, ref, r));
  o.Set("int4VsScalar", test_int4_vs_scalar(k, ref, r));
  o.Set("int4SharedOperands", test_int4_shared_operands(k, r));
  return o;
}

}  // namespace grpst::addon

namespace grpst::addon {

/**
 * benchGemm(level, M, N, K, threads, iterations[, format]) -> seconds per y[M,N] = x[M,K] * w[N,K]^T,
 * the best of `iterations`, with the weights cycling through buffers larger than the caches (as a
 * decode step streams them from DRAM). format: "bf16" (default), "int8_sq" (int8 weights with
 * per-channel scales; the activations quantized per token inside the call, as a forward does),
 * "int8_wo" (the same weights, fp32 activations), "fp8" (e4m3 weights, the activations rounded to
 * e4m3 inside the call) or "int4_awq" (groups of 128).
 */
Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  const CpuLevel level = parse_cpu_level(info[0].As<Napi::String>().Utf8Value());
  const int M = info[1].As<Napi::Number>().Int32Value(), N = info[2].As<Napi::Number>().Int32Value(),
            K = info[3].As<Napi::Number>().Int32Value(), threads = info[4].As<Napi::Number>().Int32Value(),
            iters = info[5].As<Napi::Number>().Int32Value();
  if (!cpu_supports(level)) throw Napi::Error::New(info.Env(), "benchGemm: this CPU cannot run the " + info[0].As<Napi::String>().Utf8Value() + " kernels");
  const std::string format = info.Length() > 6 ? info[6].As<Napi::String>().Utf8Value() : "bf16";
  if (format != "bf16" && format != "int8_sq" && format != "int8_wo" && format != "fp8" && format != "int4_awq")
    throw Napi::Error::New(info.Env(), "benchGemm: format must be bf16, int8_sq, int8_wo, fp8 or int4_awq, not " + format);
  const bool int8 = format == "int8_sq" || format == "int8_wo", fp8 = format == "fp8", int4 = format == "int4_awq";
  constexpr int kGroup = 128;
  const CpuKernels& k = cpu_kernels(level);
  const size_t wbytes = int4 ? size_t(N) * K / 2 : size_t(N) * K * (int8 || fp8 ? 1 : 2);
  const int copies = int(std::max<size_t>(1, (256u << 20) / wbytes));
  // bf16 1.0 everywhere, int8 weights -100 and 100 (uint16 words of two bytes), or e4m3 -1.125 and 1.0
  const uint16_t word = int8 ? 0x9c64 : fp8 ? 0xb938 : 0x3f80;
  std::vector<std::vector<uint16_t>> ws(copies, std::vector<uint16_t>((wbytes + 1) / 2, word));
  std::vector<float> x(size_t(M) * K, 0.5f), y(size_t(M) * N), scales(size_t(N) * (int4 ? K / kGroup : 1), 0.01f);
  std::vector<uint8_t> zeros(size_t(N) * (K / kGroup), 8);
  ThreadPool pool(threads);
  LinearWeight lw;
  lw.fmt = format == "int8_sq"   ? WeightFormat::INT8_SQ
           : format == "int8_wo" ? WeightFormat::INT8_WO
           : fp8                 ? WeightFormat::FP8
           : int4                ? WeightFormat::INT4
                                 : WeightFormat::BF16;
  lw.scales = scales.data();
  lw.zeros = zeros.data();
  lw.group_size = kGroup;
  lw.out_features = N;
  lw.in_features = K;
  lw.ldw = int4 ? K / 2 : K;
  double best = 1e30;
  for (int it = 0; it < iters; it++) {
    lw.w = ws[it % copies].data();
    auto t0 = std::chrono::steady_clock::now();
    linear_forward(lw, x.data(), y.data(), M, k, pool);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return Napi::Number::New(info.Env(), best);
}

/**
 * benchAttention(level, group, headDim, ctx, rows, iterations) -> seconds per attention call of one
 * KV head: `rows` query rows of `group` heads at positions ctx-1 .. ctx+rows-2 (a prefill chunk
 * at the end of a ctx-token prompt, or one decode row), over a bf16 pool of 16-key blocks in
 * scattered order; the best of `iterations`.
 */
Napi::Value BenchAttention(const Napi::CallbackInfo& info) {
  const CpuLevel level = parse_cpu_level(info[0].As<Napi::String>().Utf8Value());
  const int G = info[1].As<Napi::Number>().Int32Value(), D = info[2].As<Napi::Number>().Int32Value(),
            ctx = info[3].As<Napi::Number>().Int32Value(), rows = info[4].As<Napi::Number>().Int32Value(),
            iters = info[5].As<Napi::Number>().Int32Value();
  if (!cpu_supports(level)) throw Napi::Error::New(info.Env(), "benchAttention: this CPU cannot run the " + info[0].As<Napi::String>().Utf8Value() + " kernels");
  if (G < 1 || D < 1 || ctx < 1 || rows < 1 || iters < 1)
    throw Napi::Error::New(info.Env(), "benchAttention: group, headDim, ctx, rows and iterations must be positive");
  const CpuKernels& k = cpu_kernels(level);
  constexpr int bs = 16;
  const int L = ctx + rows - 1, blocks = (L + bs - 1) / bs;
  Rand r;
  const std::vector<uint16_t> kp = r.bf16(size_t(blocks) * bs * D, 2), vp = r.bf16(kp.size(), 2);
  std::vector<int32_t> table(blocks);
  for (int b = 0; b < blocks; b++) table[b] = int32_t((int64_t(b) * 7919) % blocks);  // a scattered order
  auto q = r.floats(size_t(rows) * G * D, -2, 2);
  std::vector<float> out(q.size()), scratch(attention_scratch_floats(L));
  const AttentionArgs a = paged_attention_args(q.data(), G, D, rows, kp.data(), vp.data(), KvElem::BF16, bs, 1, 0, table.data(),
                                               ctx, out.data(), scratch.data());
  double best = 1e30;
  for (int it = 0; it < iters; it++) {
    auto t0 = std::chrono::steady_clock::now();
    k.attention(a);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return Napi::Number::New(info.Env(), best);
}

}  // namespace grpst::addon
