// Parity: the persistent decode step (every layer of one sequence's step in one launch) against
// its CPU twin, the twins of the separate kernels it fuses chained layer by layer: linear with the
// input RMSNorm (QKV), qk_norm_rope_kv (q/k norm, RoPE, KV write), attention_row, linear with the
// residual add (O), linear with the post-attention norm and SwiGLU (gate_up), linear with the
// residual add (down). Checked: the residual stream after the last layer, every layer's new K / V
// in the cache, and a second launch giving the same bits (fixed-order sums; the grid barrier and
// split counters left ready for it).
#include <cmath>

#include "harness.h"
#include "paged_setup.h"
#include "reference.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

struct Case {
  int H, I, nh, nkv, hd, layers, pos, grid;
  bool norms;
};

ref::HostWeight random_weight(Rng& r, int N, int K) {
  ref::HostWeight w;
  w.N = N;
  w.K = K;
  w.bf16 = rand_bf16(r, static_cast<size_t>(N) * K, 1.5f / std::sqrt(static_cast<float>(K)));
  return w;
}
ref::VF around_one(Rng& r, int n) {
  ref::VF v(n);
  for (auto& x : v) x = 1.f + r.sym(0.2f);
  return v;
}
ref::V16 to_bf16(const ref::VF& v) {
  ref::V16 b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = f2bf(v[i]);
  return b;
}

void test_case(const Case& c) {
  const std::string name = "decode_persistent H=" + std::to_string(c.H) + " I=" + std::to_string(c.I) +
                           " nh=" + std::to_string(c.nh) + " nkv=" + std::to_string(c.nkv) + " hd=" + std::to_string(c.hd) +
                           " layers=" + std::to_string(c.layers) + " pos=" + std::to_string(c.pos) +
                           " grid=" + std::to_string(c.grid) + (c.norms ? "" : " no-qk-norm");
  Rng r(707 + c.H + c.I * 3 + c.hd * 5 + c.pos * 7 + c.grid);
  const int bs = 16, ctx = c.pos + 1, Q = (c.nh + 2 * c.nkv) * c.hd, A = c.nh * c.hd;
  const cu::KvGeometry geo0{0, bs, c.nkv, c.hd, cu::KvDtype::bf16};
  if (!Checks::get().expect(name + " supported", cu::decode_persistent_supported(c.H, c.I, c.nh, c.nkv, geo0))) return;

  // Per layer: weights, norms and a cache of random history (one block table for every layer).
  std::vector<PagedSetup> caches(c.layers);
  std::vector<ref::HostWeight> wqkv, wo, wgu, wdown;
  std::vector<ref::VF> in_norm, post_norm;
  ref::VF qn = c.norms ? around_one(r, c.hd) : ref::VF(), kn = c.norms ? around_one(r, c.hd) : ref::VF();
  Dev<float> dqn(qn), dkn(kn);
  std::vector<Dev<uint16_t>> dw;
  std::vector<Dev<float>> dnorm;
  std::vector<cu::PersistentLayer> layers(c.layers);
  for (int l = 0; l < c.layers; ++l) {
    make_paged(caches[l], {ctx}, c.nkv, c.hd, bs, cu::KvDtype::bf16, r);
    if (l > 0) caches[l].tables = caches[0].tables;  // random contents either way; layer 0's table
    wqkv.push_back(random_weight(r, Q, c.H));
    wo.push_back(random_weight(r, c.H, A));
    wgu.push_back(random_weight(r, 2 * c.I, c.H));
    wdown.push_back(random_weight(r, c.H, c.I));
    in_norm.push_back(around_one(r, c.H));
    post_norm.push_back(around_one(r, c.H));
    for (const ref::HostWeight* w : {&wqkv[l], &wo[l], &wgu[l], &wdown[l]}) dw.emplace_back(w->bf16);
    dnorm.emplace_back(in_norm[l]);
    dnorm.emplace_back(post_norm[l]);
    const size_t b = dw.size() - 4;
    layers[l] = cu::PersistentLayer{dnorm[2 * l].p, dnorm[2 * l + 1].p, c.norms ? dqn.p : nullptr,
                                    c.norms ? dkn.p : nullptr, dw[b].as<cu::bf16>(), dw[b + 1].as<cu::bf16>(),
                                    dw[b + 2].as<cu::bf16>(), dw[b + 3].as<cu::bf16>(),
                                    cu::KvLayer{caches[l].dk.p, caches[l].dv.p, 1.f, 1.f}};
  }
  const std::vector<int32_t>& table = caches[0].tables;
  const int slot = table[c.pos / bs] * bs + c.pos % bs;
  std::vector<float> inv(c.hd / 2);
  for (int i = 0; i < c.hd / 2; ++i) inv[i] = static_cast<float>(1.0 / std::pow(1e6, 2.0 * i / c.hd));
  const float scale = 1.f / std::sqrt(static_cast<float>(c.hd)), eps = 1e-6f;
  const ref::V16 h0 = rand_bf16(r, c.H, 1.f);

  // The twin, layer by layer.
  ref::VF h = bf16_to_f32(h0);
  for (int l = 0; l < c.layers; ++l) {
    ref::VF qkv, act, att(A);
    ref::linear(to_bf16(h), &in_norm[l], eps, nullptr, wqkv[l], cu::Epilogue::store, false, 1, qkv);
    ref::V16 q;
    ref::qk_norm_rope_kv(to_bf16(qkv), {c.pos}, {slot}, qn, kn, eps, inv, 1.f, 1, c.nh, caches[l].kv, q);
    caches[l].kv.dequantize_all();
    ref::attention_row(q.data(), c.nh, ctx, table.data(), caches[l].kv, scale, att.data());
    ref::linear(to_bf16(att), nullptr, eps, nullptr, wo[l], cu::Epilogue::residual_add, false, 1, h);
    ref::linear(to_bf16(h), &post_norm[l], eps, nullptr, wgu[l], cu::Epilogue::swiglu, false, 1, act);
    ref::linear(to_bf16(act), nullptr, eps, nullptr, wdown[l], cu::Epilogue::residual_add, false, 1, h);
  }

  Dev<cu::PersistentLayer> dlayers(layers);
  const int splits = cu::decode_persistent_splits(ctx, c.nkv, c.grid);
  Dev<uint16_t> dh(h0), dqkv(Q), dattn(A), dact(c.I);
  Dev<float> partials(cu::decode_persistent_partials(c.nh, c.hd, splits));
  Dev<unsigned> sync(cu::decode_persistent_sync_words(c.nkv));
  cudaMemset(sync.p, 0, sync.n * sizeof(unsigned));
  Dev<int32_t> dpos(std::vector<int32_t>{c.pos}), dslot(std::vector<int32_t>{slot}), dseq(std::vector<int32_t>{0});
  cu::PersistentDecode p;
  p.layers = dlayers.p;
  p.num_layers = c.layers;
  p.hidden = c.H, p.intermediate = c.I, p.heads = c.nh, p.kv_heads = c.nkv, p.head_dim = c.hd;
  p.eps = eps;
  p.softmax_scale = scale;
  Dev<float> dinv(inv);
  p.rope = cu::Rope{dinv.p, 1.f};
  p.geo = cu::KvGeometry{caches[0].kv.num_blocks, bs, c.nkv, c.hd, cu::KvDtype::bf16};
  p.tables = cu::PagedTables{caches[0].dtables.p, caches[0].max_blocks};
  p.positions = dpos.p, p.slots = dslot.p, p.token_seq = dseq.p;
  p.h = dh.as<cu::bf16>(), p.qkv = dqkv.as<cu::bf16>(), p.attn = dattn.as<cu::bf16>(), p.act = dact.as<cu::bf16>();
  p.partials = partials.p;
  p.sync = sync.p;
  p.splits = splits;
  std::vector<uint16_t> first;
  for (int run = 0; run < 2; ++run) {
    dh.upload(h0);
    dqkv.poison();
    dattn.poison();
    dact.poison();
    const std::string n = name + " splits=" + std::to_string(splits) + (run ? " again" : "");
    if (!Checks::get().status(n, cu::decode_persistent(p, c.grid, {})) ||
        !cuda_ok(cudaDeviceSynchronize(), "decode_persistent"))
      return;
    const std::vector<uint16_t> got = dh.download();
    if (run == 0) {
      Checks::get().compare(n + " residual stream", bf16_to_f32(got), h, 1e-2);
      first = got;
    } else {
      Checks::get().expect(n + " same bits as the first launch", got == first);
    }
  }
  std::vector<float> gk, wk, gv, wv;
  for (int l = 0; l < c.layers; ++l) {
    ref::KvHost got = caches[l].kv;
    got.k = caches[l].dk.download();
    got.v = caches[l].dv.download();
    for (int kh = 0; kh < c.nkv; ++kh)
      for (int d = 0; d < c.hd; ++d) {
        const size_t idx = caches[l].kv.index(slot / bs, kh, slot % bs, d);
        gk.push_back(got.get(true, idx));
        wk.push_back(caches[l].kv.get(true, idx));
        gv.push_back(got.get(false, idx));
        wv.push_back(caches[l].kv.get(false, idx));
      }
  }
  Checks::get().compare(name + " new K in every layer's cache", gk, wk, 1e-2);
  Checks::get().compare(name + " new V in every layer's cache", gv, wv, 1e-2);
}

}  // namespace

void test_persistent() {
  int sms = 132;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const Case cases[] = {
      {256, 512, 4, 2, 64, 2, 300, sms, true},      // rows of whole 256-element multiples: per-warp sums
      {512, 1536, 8, 2, 128, 2, 1000, sms, true},   // Qwen3-8B's head layout (4 query heads per kv head)
      {512, 1536, 8, 2, 128, 3, 1000, 8, true},     // few blocks: the weight ring wraps many times
      {512, 768, 16, 2, 64, 2, 0, sms, true},       // 8 query heads per kv head, one key: one split
      {200, 328, 4, 4, 32, 2, 17, sms, false},      // rows off 256: per-thread sums; no q/k norm
      {200, 328, 4, 4, 32, 2, 77, 5, false},
      {256, 256, 4, 1, 256, 2, 40, sms, true},      // head_dim 256
      {2048, 6144, 16, 4, 128, 2, 130, sms, true},  // rows of 2,048 / 6,144: x in registers (J = 1, 3)
      {4096, 12288, 32, 8, 128, 1, 700, sms, true}, // one Qwen3-8B layer (J = 2, 6)
  };
  for (const Case& c : cases) test_case(c);
}

}  // namespace harness
