// Parity: embedding gather, RMSNorm (+ residual), SwiGLU, calibration column statistics, AWQ's
// search objective, q/k norm + RoPE + KV-cache write, and
// the quantizing kernels' division by a shared divisor (div_by) against IEEE division.
#include "../../../native/src/kernels/cuda/awq_loss.h"
#include "../../../native/src/kernels/cuda/device_utils.cuh"
#include "harness.h"
#include "paged_setup.h"
#include "reference.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

static void test_embedding() {
  Rng r(11);
  const int V = 1000, H = 264, T = 37;
  auto table = rand_bf16(r, static_cast<size_t>(V) * H);
  std::vector<int32_t> ids(T);
  for (auto& i : ids) i = r.below(V);
  ids[3] = -1;
  ids[5] = V;  // out of range -> zero rows
  Dev<uint16_t> dt(table);
  Dev<int32_t> di(ids);
  Dev<uint16_t> out(static_cast<size_t>(T) * H);
  out.poison();
  Checks::get().status("embedding launch", cu::embedding(di.p, dt.as<cu::bf16>(), out.as<cu::bf16>(), T, H, V, {}));
  ref::V16 want;
  ref::embedding(ids, table, H, V, want);
  Checks::get().compare("embedding", bf16_to_f32(out.download()), bf16_to_f32(want), 0.0);
}

static void test_rmsnorm(bool with_residual, int M, int H) {
  Rng r(21 + M + H);
  auto x = rand_bf16(r, static_cast<size_t>(M) * H, 3.f);
  auto res = rand_bf16(r, static_cast<size_t>(M) * H, 2.f);
  std::vector<float> w(H);
  for (auto& v : w) v = 1.f + r.sym(0.2f);
  Dev<uint16_t> dx(x), dres(res), dy(static_cast<size_t>(M) * H);
  Dev<float> dw(w);
  dy.poison();
  const std::string name = std::string("rmsnorm") + (with_residual ? "+residual" : "") + " M=" + std::to_string(M) +
                           " H=" + std::to_string(H);
  // The residual sum is written in place of x (residual_out aliases x), as the runner does.
  Checks::get().status(name, cu::rmsnorm(dx.as<cu::bf16>(), with_residual ? dres.as<cu::bf16>() : nullptr,
                                         with_residual ? dx.as<cu::bf16>() : nullptr, dw.p,
                                         dy.as<cu::bf16>(), M, H, 1e-6f, {}));
  ref::V16 y, sum;
  ref::rmsnorm(x, with_residual ? &res : nullptr, with_residual ? &sum : nullptr, w, M, H, 1e-6f, y);
  Checks::get().compare(name, bf16_to_f32(dy.download()), bf16_to_f32(y), 4e-3);
  if (with_residual) Checks::get().compare(name + " sum", bf16_to_f32(dx.download()), bf16_to_f32(sum), 0.0);
}

static void test_swiglu() {
  Rng r(31);
  const int M = 19, I = 1000;
  auto gu = rand_bf16(r, static_cast<size_t>(M) * 2 * I, 6.f);
  Dev<uint16_t> dg(gu), dout(static_cast<size_t>(M) * I);
  dout.poison();
  Checks::get().status("swiglu launch", cu::swiglu(dg.as<cu::bf16>(), dout.as<cu::bf16>(), M, I, {}));
  ref::V16 want;
  ref::swiglu(gu, M, I, want);
  Checks::get().compare("swiglu", bf16_to_f32(dout.download()), bf16_to_f32(want), 4e-3);
}

// Two passes into buffers that already hold totals (as calibration accumulates chunk after chunk):
// rows past one block of 64, columns past one of 128 and a row stride wider than the columns read.
static void test_column_abs_stats(int rows, int cols, int ld, bool with_sum) {
  Rng r(51 + rows + cols);
  auto x1 = rand_bf16(r, static_cast<size_t>(rows) * ld, 5.f), x2 = rand_bf16(r, static_cast<size_t>(rows) * ld, 3.f);
  std::vector<float> mx(cols);
  std::vector<double> sum(cols);
  for (int c = 0; c < cols; ++c) {
    mx[c] = c % 7 == 0 ? 9.f : 0.f;  // some columns start above anything the data holds
    sum[c] = 0.25 * c;
  }
  Dev<uint16_t> d1(x1), d2(x2);
  Dev<float> dmx(mx);
  Dev<double> dsum(sum);
  const std::string name = "column_abs_stats rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
                           " ld=" + std::to_string(ld) + (with_sum ? "" : " max only");
  for (const auto* d : {&d1, &d2})
    Checks::get().status(name + " launch", cu::column_abs_stats(d->template as<cu::bf16>(), rows, cols, ld, dmx.p,
                                                                with_sum ? dsum.p : nullptr, {}));
  std::vector<double> want_sum = sum;
  ref::column_abs_stats(x1, rows, cols, ld, mx, want_sum);
  ref::column_abs_stats(x2, rows, cols, ld, mx, want_sum);
  if (!with_sum) want_sum = sum;
  Checks::get().compare(name + " max", dmx.download(), mx, 0.0);
  const std::vector<double> got_sum = dsum.download();
  Checks::get().compare(name + " sum", std::vector<float>(got_sum.begin(), got_sum.end()),
                        std::vector<float>(want_sum.begin(), want_sum.end()), 1e-6);
}

// The quantization error bit for bit (the same fp32 operations as the CPU), and the sum of squared
// products over edge tiles (n, rows not multiples of 64) within fp32 summation error.
static void test_awq_loss(int n, int rows, int K, int group, bool scaled) {
  Rng r(61 + n + rows + group);
  std::vector<float> x(static_cast<size_t>(n) * K), w(static_cast<size_t>(rows) * K), s;
  for (auto& v : x) v = r.sym(2.f);
  for (auto& v : w) v = r.sym(0.05f);
  if (scaled) {
    s.resize(K);
    for (auto& v : s) v = 0.25f + std::fabs(r.sym(2.f));
  }
  Dev<float> dx(x), dw(w), ds(scaled ? s : std::vector<float>{0.f}), dd(w.size());
  Dev<double> dp(static_cast<size_t>(cu::awq_partial_blocks(n, rows)));
  dd.poison();
  const std::string name = "awq n=" + std::to_string(n) + " rows=" + std::to_string(rows) + " K=" + std::to_string(K) +
                           " group=" + std::to_string(group) + (scaled ? "" : " unscaled");
  Checks::get().status(name + " delta launch", cu::awq_delta(dw.p, scaled ? ds.p : nullptr, rows, K, group, dd.p, {}));
  Checks::get().status(name + " sumsq launch", cu::awq_sumsq(dx.p, dd.p, n, rows, K, dp.p, {}));
  ref::VF want;
  ref::awq_delta(w, s, rows, K, group, want);
  const ref::VF got = dd.download();
  Checks::get().compare(name + " delta", got, want, 0.0);
  double total = 0;
  for (double v : dp.download()) total += v;
  const double ref_total = ref::awq_sumsq(x, want, n, rows, K);
  Checks::get().compare(name + " sum of squares", {static_cast<float>(total)}, {static_cast<float>(ref_total)}, 1e-5);
}

static void test_qk_norm_rope(int nh, int nkv, int hd, cu::KvDtype dtype, float att_scaling, bool norms) {
  Rng r(41 + nh + hd + static_cast<int>(dtype));
  const int T = 23, bs = 16, blocks = 8;
  ref::KvHost kv;
  kv.dtype = dtype;
  kv.num_blocks = blocks;
  kv.block_size = bs;
  kv.nkv = nkv;
  kv.hd = hd;
  kv.k_scale = dtype == cu::KvDtype::int8 ? 0.05f : dtype == cu::KvDtype::fp8 ? 0.02f : 1.f;
  kv.v_scale = dtype == cu::KvDtype::int8 ? 0.03f : dtype == cu::KvDtype::fp8 ? 0.01f : 1.f;
  kv.allocate();
  auto qkv = rand_bf16(r, static_cast<size_t>(T) * (nh + 2 * nkv) * hd, 2.f);
  ref::VF qn, kn;
  random_qk_norms(r, hd, norms, qn, kn);
  std::vector<int32_t> pos(T), slots(T);
  for (int t = 0; t < T; ++t) {
    pos[t] = t < 3 ? 30000 + 7 * t : r.below(4096);  // large positions exercise the angle reduction
    slots[t] = t == 4 ? -1 : (t * 5) % (blocks * bs);
  }
  const std::vector<float> inv = rope_inv_freq(hd);
  Dev<uint16_t> dqkv(qkv), dq(static_cast<size_t>(T) * nh * hd);
  Dev<float> dqn(qn), dkn(kn);
  Dev<int32_t> dpos(pos), dslots(slots);
  Dev<float> dinv(inv);
  Dev<uint8_t> dk(kv.k.size()), dv(kv.v.size());
  cudaMemset(dk.p, 0, dk.n);
  cudaMemset(dv.p, 0, dv.n);
  dq.poison();
  const std::string name = "qk_norm_rope_kv nh=" + std::to_string(nh) + " nkv=" + std::to_string(nkv) +
                           " hd=" + std::to_string(hd) + " kv=" + kv_name(dtype) + (norms ? "" : " no-norm");
  cu::KvGeometry geo{blocks, bs, nkv, hd, dtype};
  cu::KvLayer layer{dk.p, dv.p, kv.k_scale, kv.v_scale};
  Checks::get().status(name, cu::qk_norm_rope_kv(dqkv.as<cu::bf16>(), dpos.p, dslots.p,
                                                 norms ? dqn.p : nullptr, norms ? dkn.p : nullptr, 1e-6f,
                                                 cu::Rope{dinv.p, att_scaling}, T, nh, geo, layer,
                                                 dq.as<cu::bf16>(), {}));
  ref::V16 q_want;
  ref::qk_norm_rope_kv(qkv, pos, slots, qn, kn, 1e-6f, inv, att_scaling, T, nh, kv, q_want);
  Checks::get().compare(name + " q", bf16_to_f32(dq.download()), bf16_to_f32(q_want), 4e-3);
  ref::KvHost got = kv;
  got.k = dk.download();
  got.v = dv.download();
  std::vector<float> gk, wk, gv, wv;
  for (size_t i = 0; i < static_cast<size_t>(blocks) * nkv * bs * hd; ++i) {
    gk.push_back(got.get(true, i));
    wk.push_back(kv.get(true, i));
    gv.push_back(got.get(false, i));
    wv.push_back(kv.get(false, i));
  }
  const double tol = dtype == cu::KvDtype::bf16 ? 4e-3 : 2e-2;
  Checks::get().compare(name + " k cache", gk, wk, tol);
  Checks::get().compare(name + " v cache", gv, wv, tol);
}

// Counts the pairs where div_by differs from __fdiv_rn in bits: x with exponents 2^-60..2^60 and
// either sign, d positive with exponents 2^-30..2^30 (the quantization scales' range and beyond),
// from a per-thread hash; each thread tries `per` divisors, each against `per` numerators.
__global__ void div_by_mismatches(unsigned long long seed, int per, unsigned int* bad) {
  unsigned long long s = seed ^ (0x9e3779b97f4a7c15ull * (blockIdx.x * blockDim.x + threadIdx.x + 1));
  auto next = [&]() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<unsigned int>(s >> 16);
  };
  unsigned int n = 0;
  for (int i = 0; i < per; ++i) {
    const float d = __uint_as_float((next() & 0x007fffffu) | ((97u + next() % 61u) << 23));
    const float inv = __frcp_rn(d);
    for (int j = 0; j < per; ++j) {
      const float x = __uint_as_float((next() & 0x807fffffu) | ((67u + next() % 121u) << 23));
      n += __float_as_uint(grpst::cuda::div_by(x, d, inv)) != __float_as_uint(__fdiv_rn(x, d));
    }
  }
  if (n) atomicAdd(bad, n);
}

static void test_div_by() {
  Dev<unsigned int> bad(std::vector<unsigned int>{0u});
  const int blocks = 1024, threads = 256, per = 64;  // 2^28 pairs
  div_by_mismatches<<<blocks, threads>>>(12345, per, bad.p);
  const bool ran = cudaDeviceSynchronize() == cudaSuccess;
  const unsigned int n = ran ? bad.download()[0] : 1u;
  Checks::get().expect("div_by equals __fdiv_rn on 2^28 pairs", ran && n == 0,
                       std::to_string(n) + " differ");
}

void test_elementwise() {
  test_div_by();
  test_embedding();
  test_rmsnorm(false, 7, 4096);
  test_rmsnorm(true, 33, 4096);
  test_rmsnorm(true, 5, 96);
  test_swiglu();
  test_column_abs_stats(300, 1000, 1100, true);
  test_column_abs_stats(7, 4096, 4096, true);
  test_column_abs_stats(130, 256, 6144, false);
  test_awq_loss(70, 100, 256, 64, true);
  test_awq_loss(256, 192, 512, 128, true);
  test_awq_loss(33, 65, 128, 32, false);
  for (auto d : {cu::KvDtype::bf16, cu::KvDtype::fp8, cu::KvDtype::int8}) test_qk_norm_rope(32, 8, 128, d, 1.f, true);
  test_qk_norm_rope(6, 2, 24, cu::KvDtype::bf16, 1.f, true);
  test_qk_norm_rope(4, 1, 16, cu::KvDtype::bf16, 1.1386f, true);
  test_qk_norm_rope(4, 2, 32, cu::KvDtype::bf16, 1.f, false);
}

}  // namespace harness
