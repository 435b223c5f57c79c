// Parity: paged decode attention (GQA, split-K, bf16/fp8/int8 caches), the fused decode step
// (q/k norm + RoPE + KV write + attention), and flash-attention
// prefill over paged blocks (chunks with history, causal), against a double-precision twin.
#include <cstdlib>
#include "harness.h"
#include "paged_setup.h"
#include "reference.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

void test_decode(int nh, int nkv, int hd, cu::KvDtype dtype, int splits, bool via_positions) {
  Rng r(101 + nh * 7 + hd + splits * 3 + static_cast<int>(dtype));
  const std::vector<int> lens = {1, 17, 300, 1029, 64};
  PagedSetup p;
  make_paged(p, lens, nkv, hd, 16, dtype, r);
  const int R = static_cast<int>(lens.size());
  auto q = rand_bf16(r, static_cast<size_t>(R) * nh * hd, 1.f);
  // via_positions: the forward's call (ctx = position + 1, rows mapped to sequences in reverse).
  std::vector<int32_t> ctx(R), seq(R);
  for (int i = 0; i < R; ++i) {
    seq[i] = via_positions ? R - 1 - i : i;
    ctx[i] = via_positions ? lens[seq[i]] - 1 : lens[i];
  }
  Dev<uint16_t> dq(q), dout(static_cast<size_t>(R) * nh * hd);
  Dev<int32_t> dctx(ctx), dseq(seq);
  Dev<float> ws(cu::attention_decode_workspace(R, nh, hd, splits) + 1);
  cudaMemset(ws.p, 0, ws.n * sizeof(float));  // the merge counters start at zero
  dout.poison();
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  cu::KvGeometry geo{p.kv.num_blocks, 16, nkv, hd, dtype};
  cu::KvLayer layer{p.dk.p, p.dv.p, p.kv.k_scale, p.kv.v_scale};
  const std::string name = "attention_decode nh=" + std::to_string(nh) + " nkv=" + std::to_string(nkv) +
                           " hd=" + std::to_string(hd) + " kv=" + kv_name(dtype) + " splits=" + std::to_string(splits) +
                           (via_positions ? " rows->seqs" : "");
  std::vector<float> want(static_cast<size_t>(R) * nh * hd);
  for (int i = 0; i < R; ++i)
    ref::attention_row(&q[static_cast<size_t>(i) * nh * hd], nh, lens[seq[i]], &p.tables[seq[i] * p.max_blocks], p.kv,
                       scale, &want[static_cast<size_t>(i) * nh * hd]);
  // The staged kernel's splits merge in a thread-block cluster up to 16, by the last block beyond;
  // then by the last block at every count (GRPST_CUDA_STAGED_CLUSTER_MERGE=0), twice (the second
  // launch finds the merge counters the first one left), which the cluster merge must match bit
  // for bit.
  std::vector<uint16_t> first;
  for (int run = 0; run < (splits > 1 ? 3 : 1); ++run) {
    const std::string n = name + (run == 1 ? " last-block merge" : run == 2 ? " last-block merge again" : "");
    setenv("GRPST_CUDA_STAGED_CLUSTER_MERGE", run ? "0" : "1", 1);
    dout.poison();
    Checks::get().status(n, cu::attention_decode(dq.as<cu::bf16>(), dctx.p, via_positions ? 1 : 0,
                                                 via_positions ? dseq.p : nullptr, {p.dtables.p, p.max_blocks}, R, nh,
                                                 geo, layer, scale, splits, ws.p, dout.as<cu::bf16>(), {}));
    Checks::get().compare(n, bf16_to_f32(dout.download()), want, 6e-3);
    if (run == 0) first = dout.download();
    else Checks::get().expect(n + " bits of the default merge", dout.download() == first);
  }
  unsetenv("GRPST_CUDA_STAGED_CLUSTER_MERGE");
}

// The tensor-core decode kernel (bf16 caches): GQA groups of 1..8 heads, head dims 64 and 128,
// contexts from 1 to 32k keys (tile and block edges, an empty split), several splits, rows
// mapped to sequences of different lengths, cache blocks of 16 and 32 keys.
void test_decode_mma(int nh, int nkv, int hd, int splits, const std::vector<int>& lens, int bs, bool via_positions) {
  Rng r(211 + nh * 7 + nkv * 5 + hd + splits * 3 + bs + static_cast<int>(lens.size()));
  PagedSetup p;
  make_paged(p, lens, nkv, hd, bs, cu::KvDtype::bf16, r);
  const int R = static_cast<int>(lens.size());
  auto q = rand_bf16(r, static_cast<size_t>(R) * nh * hd, 1.f);
  std::vector<int32_t> ctx(R), seq(R);
  for (int i = 0; i < R; ++i) {
    seq[i] = via_positions ? R - 1 - i : i;
    ctx[i] = via_positions ? lens[seq[i]] - 1 : lens[i];
  }
  Dev<uint16_t> dq(q), dout(static_cast<size_t>(R) * nh * hd);
  Dev<int32_t> dctx(ctx), dseq(seq);
  Dev<float> ws(cu::attention_decode_workspace(R, nh, hd, splits) + 1);
  cudaMemset(ws.p, 0, ws.n * sizeof(float));
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  cu::KvGeometry geo{p.kv.num_blocks, bs, nkv, hd, cu::KvDtype::bf16};
  cu::KvLayer layer{p.dk.p, p.dv.p, 1.f, 1.f};
  int longest = 0;
  for (int l : lens) longest = std::max(longest, l);
  const std::string name = "attention_decode_mma nh=" + std::to_string(nh) + " nkv=" + std::to_string(nkv) +
                           " hd=" + std::to_string(hd) + " splits=" + std::to_string(splits) + " bs=" +
                           std::to_string(bs) + " rows=" + std::to_string(R) + " longest=" + std::to_string(longest) +
                           (via_positions ? " rows->seqs" : "");
  if (!Checks::get().expect(name + " supported", cu::attention_decode_mma_supported(geo, nh))) return;
  std::vector<float> want(static_cast<size_t>(R) * nh * hd);
  for (int i = 0; i < R; ++i)
    ref::attention_row(&q[static_cast<size_t>(i) * nh * hd], nh, lens[seq[i]], &p.tables[seq[i] * p.max_blocks], p.kv,
                       scale, &want[static_cast<size_t>(i) * nh * hd]);
  // Splits merged in the launch: in a thread-block cluster up to 8 splits, by the last block beyond
  // (twice: the first launch must leave its counters at zero for the second); by the last block
  // at every count (GRPST_CUDA_MMA_CLUSTER_MERGE=0), which the cluster merge must match bit for
  // bit; then by the separate reduce kernel.
  const char* modes[] = {"in-kernel merge", "in-kernel merge, second launch", "last-block merge", "reduce kernel"};
  std::vector<uint16_t> merged;
  for (int mode = 0; mode < 4; ++mode) {
    const std::string label = name + (splits > 1 ? std::string(" ") + modes[mode] : "");
    if (splits == 1 && mode > 0) break;
    setenv("GRPST_CUDA_MMA_SPLIT_REDUCE", mode == 3 ? "1" : "0", 1);
    setenv("GRPST_CUDA_MMA_CLUSTER_MERGE", mode == 2 ? "0" : "1", 1);
    dout.poison();
    Checks::get().status(label, cu::attention_decode_mma(dq.as<cu::bf16>(), dctx.p, via_positions ? 1 : 0,
                                                         via_positions ? dseq.p : nullptr, {p.dtables.p, p.max_blocks},
                                                         R, nh, geo, layer, scale, splits, ws.p, dout.as<cu::bf16>(), {}));
    const auto got = bf16_to_f32(dout.download());
    size_t nonfinite = 0;
    for (float v : got) nonfinite += std::isfinite(v) ? 0 : 1;
    Checks::get().expect(label + " all rows written", nonfinite == 0, std::to_string(nonfinite) + " non-finite");
    // P is rounded to bf16 before the PV product on tensor cores, as in prefill.
    Checks::get().compare(label, got, want, 1e-2);
    if (mode == 0) merged = dout.download();
    if (mode == 2) Checks::get().expect(label + " bits of the in-kernel merge", dout.download() == merged);
  }
  unsetenv("GRPST_CUDA_MMA_SPLIT_REDUCE");
  unsetenv("GRPST_CUDA_MMA_CLUSTER_MERGE");
}

// The twins' view of a decode step from QKV rows: q/k norm + RoPE writes the new K/V into the host
// cache (p.kv), then each row attends over its sequence; returns the attention outputs [R, nh, hd].
std::vector<float> want_from_qkv_rows(PagedSetup& p, const DecodeRows& rows, const std::vector<int>& lens, int nh,
                                      int hd, float scale) {
  const int R = static_cast<int>(lens.size());
  ref::V16 q_want;
  ref::qk_norm_rope_kv(rows.qkv, rows.pos, rows.slots, rows.qn, rows.kn, 1e-6f, rows.inv, 1.f, R, nh, p.kv, q_want);
  p.kv.dequantize_all();
  std::vector<float> want(static_cast<size_t>(R) * nh * hd);
  for (int i = 0; i < R; ++i)
    ref::attention_row(&q_want[static_cast<size_t>(i) * nh * hd], nh, lens[rows.seq[i]],
                       &p.tables[rows.seq[i] * p.max_blocks], p.kv, scale, &want[static_cast<size_t>(i) * nh * hd]);
  return want;
}

// The new tokens' cache entries on the device against the twins' (p.kv after want_from_qkv_rows).
void compare_new_cache_entries(const std::string& name, const PagedSetup& p, const std::vector<int32_t>& slots,
                               double tol) {
  ref::KvHost got = p.kv;
  got.k = p.dk.download();
  got.v = p.dv.download();
  const int bs = p.kv.block_size;
  std::vector<float> gk, wk, gv, wv;
  for (int32_t slot : slots)
    for (int h = 0; h < p.kv.nkv; ++h)
      for (int d = 0; d < p.kv.hd; ++d) {
        const size_t idx = p.kv.index(slot / bs, h, slot % bs, d);
        gk.push_back(got.get(true, idx));
        wk.push_back(p.kv.get(true, idx));
        gv.push_back(got.get(false, idx));
        wv.push_back(p.kv.get(false, idx));
      }
  Checks::get().compare(name + " k cache", gk, wk, tol);
  Checks::get().compare(name + " v cache", gv, wv, tol);
}

// The fused decode step: q/k norm + RoPE of the QKV rows, the new K/V written to the cache, and
// attention over the history plus the new token, against qk_norm_rope_kv's and attention's twins.
void test_decode_fused(int nh, int nkv, int hd, cu::KvDtype dtype, int splits, bool norms) {
  Rng r(303 + nh * 5 + hd + splits * 11 + static_cast<int>(dtype));
  const std::vector<int> lens = {1, 17, 300, 1029, 64};  // keys per sequence, the new token included
  PagedSetup p;
  make_paged(p, lens, nkv, hd, 16, dtype, r);  // the device cache holds stale values at the new slots
  const int R = static_cast<int>(lens.size());
  const DecodeRows rows = make_decode_rows(p, lens, nh, nkv, hd, 16, norms, r);
  const auto& [pos, slots, seq, qkv, qn, kn, inv] = rows;
  Dev<uint16_t> dqkv(qkv), dout(static_cast<size_t>(R) * nh * hd);
  Dev<float> dqn(qn), dkn(kn), dinv(inv);
  Dev<int32_t> dpos(pos), dslots(slots), dseq(seq);
  Dev<float> ws(cu::attention_decode_workspace(R, nh, hd, splits) + 1);
  cudaMemset(ws.p, 0, ws.n * sizeof(float));
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  cu::KvGeometry geo{p.kv.num_blocks, 16, nkv, hd, dtype};
  cu::KvLayer layer{p.dk.p, p.dv.p, p.kv.k_scale, p.kv.v_scale};
  const std::string name = "attention_decode_fused nh=" + std::to_string(nh) + " nkv=" + std::to_string(nkv) +
                           " hd=" + std::to_string(hd) + " kv=" + kv_name(dtype) + " splits=" + std::to_string(splits) +
                           (norms ? "" : " no-norm");
  if (!Checks::get().expect(name + " supported", cu::attention_decode_fused_supported(geo, nh, R, splits))) return;
  const std::vector<float> want = want_from_qkv_rows(p, rows, lens, nh, hd, scale);
  // Splits merged in a cluster (the default), then by the last block twice (the second launch finds
  // the counters the first left), bit for bit the first.
  std::vector<uint16_t> first;
  for (int run = 0; run < 3; ++run) {
    const std::string n = name + (run == 1 ? " last-block merge" : run == 2 ? " last-block merge again" : "");
    setenv("GRPST_CUDA_STAGED_CLUSTER_MERGE", run ? "0" : "1", 1);
    dout.poison();
    Checks::get().status(n, cu::attention_decode_fused(dqkv.as<cu::bf16>(), dpos.p, dslots.p, dseq.p,
                                                       norms ? dqn.p : nullptr, norms ? dkn.p : nullptr, 1e-6f,
                                                       cu::Rope{dinv.p, 1.f}, {p.dtables.p, p.max_blocks}, R, nh, geo,
                                                       layer, scale, splits, ws.p, dout.as<cu::bf16>(), {}));
    Checks::get().compare(n, bf16_to_f32(dout.download()), want, 6e-3);
    if (run == 0) first = dout.download();
    else Checks::get().expect(n + " bits of the default merge", dout.download() == first);
  }
  unsetenv("GRPST_CUDA_STAGED_CLUSTER_MERGE");
  compare_new_cache_entries(name, p, slots, dtype == cu::KvDtype::bf16 ? 4e-3 : 2e-2);
}

// The tensor-core decode kernel straight from the QKV rows (attention_decode_mma_qkv): against the
// twins of qk_norm_rope_kv and attention, and bit for bit against the two kernels it replaces
// (qk_norm_rope_kv, then attention_decode_mma on its queries), outputs and new cache entries; with
// the early K/V loads and without them (GRPST_CUDA_MMA_PREFETCH=0), launched twice.
void test_decode_mma_qkv(int nh, int nkv, int hd, int splits, const std::vector<int>& lens, int bs, bool norms) {
  Rng r(307 + nh * 5 + nkv + hd + splits * 11 + bs + static_cast<int>(lens.size()));
  PagedSetup p;
  make_paged(p, lens, nkv, hd, bs, cu::KvDtype::bf16, r);  // stale values at the new slots
  const int R = static_cast<int>(lens.size());
  const DecodeRows rows = make_decode_rows(p, lens, nh, nkv, hd, bs, norms, r);
  const auto& [pos, slots, seq, qkv, qn, kn, inv] = rows;
  const std::vector<uint8_t> k0 = p.dk.download(), v0 = p.dv.download();
  Dev<uint16_t> dqkv(qkv), dout(static_cast<size_t>(R) * nh * hd), dq(static_cast<size_t>(R) * nh * hd);
  Dev<float> dqn(qn), dkn(kn), dinv(inv);
  Dev<int32_t> dpos(pos), dslots(slots), dseq(seq);
  Dev<float> ws(cu::attention_decode_workspace(R, nh, hd, splits) + 1);
  cudaMemset(ws.p, 0, ws.n * sizeof(float));
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  const cu::Rope rope{dinv.p, 1.f};
  cu::KvGeometry geo{p.kv.num_blocks, bs, nkv, hd, cu::KvDtype::bf16};
  cu::KvLayer layer{p.dk.p, p.dv.p, 1.f, 1.f};
  const std::string name = "attention_decode_mma_qkv nh=" + std::to_string(nh) + " nkv=" + std::to_string(nkv) +
                           " hd=" + std::to_string(hd) + " splits=" + std::to_string(splits) + " bs=" +
                           std::to_string(bs) + " rows=" + std::to_string(R) + (norms ? "" : " no-norm");
  if (!Checks::get().expect(name + " supported", cu::attention_decode_mma_supported(geo, nh))) return;
  // The two kernels it replaces, on the same inputs: the bits it must reproduce.
  Checks::get().status(name + " qk_norm_rope_kv", cu::qk_norm_rope_kv(dqkv.as<cu::bf16>(), dpos.p, dslots.p,
                                                                      norms ? dqn.p : nullptr, norms ? dkn.p : nullptr,
                                                                      1e-6f, rope, R, nh, geo, layer, dq.as<cu::bf16>(), {}));
  Checks::get().status(name + " separate", cu::attention_decode_mma(dq.as<cu::bf16>(), dpos.p, 1, dseq.p,
                                                                    {p.dtables.p, p.max_blocks}, R, nh, geo, layer,
                                                                    scale, splits, ws.p, dout.as<cu::bf16>(), {}));
  const std::vector<uint16_t> out_sep = dout.download();
  const std::vector<uint8_t> k_sep = p.dk.download(), v_sep = p.dv.download();
  const std::vector<float> want = want_from_qkv_rows(p, rows, lens, nh, hd, scale);
  const char* modes[] = {"", " again", " without early K/V loads"};
  for (int mode = 0; mode < 3; ++mode) {
    const std::string n = name + modes[mode];
    cuda_ok(cudaMemcpy(p.dk.p, k0.data(), k0.size(), cudaMemcpyHostToDevice), "upload");  // stale new slots again
    cuda_ok(cudaMemcpy(p.dv.p, v0.data(), v0.size(), cudaMemcpyHostToDevice), "upload");
    setenv("GRPST_CUDA_MMA_PREFETCH", mode == 2 ? "0" : "1", 1);
    dout.poison();
    Checks::get().status(n, cu::attention_decode_mma_qkv(dqkv.as<cu::bf16>(), dpos.p, dslots.p, dseq.p,
                                                         norms ? dqn.p : nullptr, norms ? dkn.p : nullptr, 1e-6f, rope,
                                                         {p.dtables.p, p.max_blocks}, R, nh, geo, layer, scale, splits,
                                                         ws.p, dout.as<cu::bf16>(), {}));
    const std::vector<uint16_t> out = dout.download();
    Checks::get().compare(n, bf16_to_f32(out), want, 1e-2);
    Checks::get().expect(n + " bits of qk_norm_rope_kv + attention_decode_mma", out == out_sep);
    Checks::get().expect(n + " cache bits of qk_norm_rope_kv", p.dk.download() == k_sep && p.dv.download() == v_sep);
  }
  unsetenv("GRPST_CUDA_MMA_PREFETCH");
  compare_new_cache_entries(name, p, slots, 4e-3);
}

void test_prefill(int nh, int nkv, int hd, cu::KvDtype dtype, const std::string& kernel = "") {
  Rng r(202 + nh + hd + static_cast<int>(dtype));
  // (ctx_len, q_len): whole prompts, chunks with history, a 1-token chunk, one long prompt.
  const std::vector<std::pair<int, int>> seqs = {{300, 300}, {1000, 129}, {77, 1}, {130, 64}, {700, 700}};
  std::vector<int> lens;
  for (auto& s : seqs) lens.push_back(s.first);
  PagedSetup p;
  make_paged(p, lens, nkv, hd, 16, dtype, r);
  const int S = static_cast<int>(seqs.size());
  std::vector<int32_t> q_start(S), q_len(S), ctx_len(S), seq_index(S), tok_pos, tok_seq;
  int T = 0, max_q = 0;
  for (int s = 0; s < S; ++s) {
    q_start[s] = T;
    q_len[s] = seqs[s].second;
    ctx_len[s] = seqs[s].first;
    seq_index[s] = s;
    for (int i = 0; i < q_len[s]; ++i) {
      tok_pos.push_back(ctx_len[s] - q_len[s] + i);
      tok_seq.push_back(s);
    }
    T += q_len[s];
    max_q = std::max(max_q, q_len[s]);
  }
  auto q = rand_bf16(r, static_cast<size_t>(T) * nh * hd, 1.f);
  Dev<uint16_t> dq(q), dout(static_cast<size_t>(T) * nh * hd);
  Dev<int32_t> dqs(q_start), dql(q_len), dcl(ctx_len), dsi(seq_index), dtp(tok_pos), dts(tok_seq);
  dout.poison();
  cu::PrefillBatch b{S, max_q, T, dqs.p, dql.p, dcl.p, dsi.p, dtp.p, dts.p, 0};
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  cu::KvGeometry geo{p.kv.num_blocks, 16, nkv, hd, dtype};
  cu::KvLayer layer{p.dk.p, p.dv.p, p.kv.k_scale, p.kv.v_scale};
  const std::string name = "attention_prefill nh=" + std::to_string(nh) + " nkv=" + std::to_string(nkv) +
                           " hd=" + std::to_string(hd) + " kv=" + kv_name(dtype) + kernel;
  Checks::get().status(name, cu::attention_prefill(dq.as<cu::bf16>(), b, {p.dtables.p, p.max_blocks}, nh, geo, layer,
                                                   scale, dout.as<cu::bf16>(), {}));
  // The twin is slow: check every 5th row plus the last row of each sequence.
  const auto got_all = bf16_to_f32(dout.download());
  size_t nonfinite = 0;
  for (float v : got_all) nonfinite += std::isfinite(v) ? 0 : 1;
  Checks::get().expect(name + " all rows written", nonfinite == 0, std::to_string(nonfinite) + " non-finite");
  std::vector<float> got, want;
  std::vector<float> row(static_cast<size_t>(nh) * hd);
  for (int t = 0; t < T; ++t) {
    const bool last = t + 1 == T || tok_seq[t + 1] != tok_seq[t];
    if (t % 5 != 0 && !last) continue;
    ref::attention_row(&q[static_cast<size_t>(t) * nh * hd], nh, tok_pos[t] + 1, &p.tables[tok_seq[t] * p.max_blocks],
                       p.kv, scale, row.data());
    want.insert(want.end(), row.begin(), row.end());
    got.insert(got.end(), got_all.begin() + static_cast<size_t>(t) * nh * hd,
               got_all.begin() + static_cast<size_t>(t + 1) * nh * hd);
  }
  // P is rounded to bf16 before the PV product on tensor cores: looser than decode.
  Checks::get().compare(name, got, want, 1.5e-2);
}

}  // namespace

void test_attention() {
  for (auto d : {cu::KvDtype::bf16, cu::KvDtype::fp8, cu::KvDtype::int8}) {
    test_decode(32, 8, 128, d, 1, false);
    test_decode(32, 8, 128, d, 7, true);
  }
  for (auto d : {cu::KvDtype::fp8, cu::KvDtype::int8}) {
    test_decode(32, 8, 128, d, 16, true);  // a cluster past the portable 8 blocks
    test_decode(32, 8, 128, d, 33, false);  // past 16: merged by the last block
  }
  test_decode(16, 2, 64, cu::KvDtype::fp8, 12, false);
  test_decode(6, 2, 24, cu::KvDtype::bf16, 3, true);
  test_decode(4, 1, 16, cu::KvDtype::bf16, 1, false);
  test_decode(4, 2, 32, cu::KvDtype::int8, 2, false);
  test_decode(16, 2, 64, cu::KvDtype::bf16, 4, false);
  {
    const std::vector<int> mixed = {1, 15, 16, 17, 31, 33, 300, 1029, 64, 2};
    for (int hd : {64, 128}) {
      test_decode_mma(8, 8, hd, 1, mixed, 16, false);   // G = 1
      test_decode_mma(16, 8, hd, 3, mixed, 16, true);   // G = 2
      test_decode_mma(32, 8, hd, 7, mixed, 16, true);   // G = 4 (Qwen3-8B)
      test_decode_mma(16, 2, hd, 16, mixed, 32, false); // G = 8
      test_decode_mma(32, 8, hd, 1, mixed, 32, true);
    }
    test_decode_mma(6, 2, 128, 2, mixed, 16, false);  // G = 3: padded rows
    test_decode_mma(32, 8, 128, 4, mixed, 16, true);   // the one-sequence split counts of the
    test_decode_mma(32, 8, 128, 8, {512, 1029, 2}, 16, false);  // cluster merge's range
    setenv("GRPST_CUDA_MMA_CLUSTER_MAX", "16", 1);  // clusters past the portable 8 blocks
    test_decode_mma(32, 8, 128, 16, {4096, 300, 8192}, 16, true);
    test_decode_mma(16, 2, 64, 12, {5000, 17}, 32, false);
    unsetenv("GRPST_CUDA_MMA_CLUSTER_MAX");
    test_decode_mma(16, 2, 128, 16, {32768, 5, 2049, 4097}, 16, true);
    test_decode_mma(16, 2, 128, 1, {32768, 1}, 16, false);
    test_decode_mma(4, 1, 64, 32, {32768, 20000, 7}, 32, true);
    test_decode_mma(32, 8, 128, 64, {3, 100}, 16, false);  // more splits than tiles: empty splits
    for (int hd : {64, 128}) {
      test_decode_mma_qkv(32, 8, hd, 4, mixed, 16, true);   // G = 4 (Qwen3-8B), one split holding 1 / 2 / 16 keys
      test_decode_mma_qkv(16, 2, hd, 16, mixed, 32, true);  // G = 8
    }
    test_decode_mma_qkv(8, 8, 128, 1, mixed, 16, false);    // G = 1, no norm weights
    test_decode_mma_qkv(6, 2, 128, 3, mixed, 16, true);     // G = 3: padded rows
    test_decode_mma_qkv(32, 8, 128, 4, {512}, 16, true);    // the b1 step of the benchmarks
    test_decode_mma_qkv(32, 8, 128, 33, {32768, 4097}, 16, true);
    test_decode_mma_qkv(32, 8, 128, 64, {3, 100}, 16, true);  // empty splits
  }
  test_decode_fused(32, 8, 128, cu::KvDtype::bf16, 1, true);
  test_decode_fused(32, 8, 128, cu::KvDtype::bf16, 7, true);
  test_decode_fused(32, 8, 128, cu::KvDtype::fp8, 5, true);
  test_decode_fused(32, 8, 128, cu::KvDtype::fp8, 16, true);
  test_decode_fused(32, 8, 128, cu::KvDtype::int8, 3, true);
  test_decode_fused(6, 2, 24, cu::KvDtype::bf16, 3, true);
  test_decode_fused(4, 1, 16, cu::KvDtype::bf16, 2, true);
  test_decode_fused(4, 2, 32, cu::KvDtype::int8, 1, false);
  test_decode_fused(16, 2, 64, cu::KvDtype::bf16, 4, true);
  // The FA2-layout prefill kernel with 4 warps per block (the default) and with 8
  // (GRPST_CUDA_PREFILL_FA2_WARPS=8), then the 16-rows-per-warp one (GRPST_CUDA_PREFILL_V1=1).
  for (const char* variant : {"", " fa2 warps=8", " v1"}) {
    const std::string tag = variant;
    setenv("GRPST_CUDA_PREFILL_V1", tag == " v1" ? "1" : "0", 1);
    setenv("GRPST_CUDA_PREFILL_FA2_WARPS", tag == " fa2 warps=8" ? "8" : "4", 1);
    for (auto d : {cu::KvDtype::bf16, cu::KvDtype::fp8, cu::KvDtype::int8}) test_prefill(32, 8, 128, d, tag);
    test_prefill(16, 4, 64, cu::KvDtype::bf16, tag);
    test_prefill(8, 8, 128, cu::KvDtype::bf16, tag);  // no grouping
    test_prefill(12, 2, 64, cu::KvDtype::fp8, tag);   // 6 query heads per kv head
  }
  unsetenv("GRPST_CUDA_PREFILL_V1");
  unsetenv("GRPST_CUDA_PREFILL_FA2_WARPS");
  test_prefill(6, 2, 24, cu::KvDtype::bf16);  // fallback path
}

}  // namespace harness
