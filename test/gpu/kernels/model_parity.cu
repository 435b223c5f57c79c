// Whole-model parity on the GPU: the tiny fixture checkpoints (fixture_model.h) run through the
// CUDA forward in bf16 and are compared with the transformers references in test/fixtures:
// every prompt logprob within a bf16 tolerance, and the 24 greedy tokens equal until the
// reference's top-2 margin falls under a near-tie threshold; once with the bf16 models' default
// decode kernels and once through the streaming path quantized models take. Then the same with
// two tensor-parallel ranks on this one GPU (model_parity_tp.cu).
#include <algorithm>
#include <cmath>

#include "fixture_model.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

// Tolerances (bf16 activations against the fp32 reference).
constexpr double kMaxLogprobDiff = 0.25;
constexpr double kMeanLogprobDiff = 0.06;
constexpr double kNearTie = 0.1;  // greedy comparison stops at the first reference margin below this

// streaming: the bf16 model through the streaming decode path (weight-streaming GEMV) that
// quantized models take, instead of its default kernels; fused: with the fused decode attention
// (q/k norm + RoPE + KV write inside it) instead of the separate kernels; persistent: decode steps
// through the persistent one-launch kernel (decode_persistent).
int run_fixture(const Fixture& f, cu::LtContext* lt, bool streaming, bool fused, bool persistent = false) {
  const int max_len = 512;
  FixtureModel m;
  if (!Checks::get().expect("parity upload " + f.name, upload_fixture(f, 0, 1, max_len, m))) return 1;
  const int blocks = m.blocks;
  cu::ForwardLimits lim;
  lim.max_tokens = max_len;
  lim.max_logits = max_len;
  std::unique_ptr<cu::Forward> fwd;
  if (!Checks::get().status("parity Forward::create " + f.name, cu::Forward::create(m.d, m.w, lim, lt, 132, &fwd)) ||
      !Checks::get().status("parity Forward::set_kv " + f.name, fwd->set_kv(m.cache)) ||
      !Checks::get().status("parity set_persistent_decode " + f.name, fwd->set_persistent_decode(persistent)))
    return 1;
  fwd->set_stream_bf16(streaming);
  fwd->set_fused_decode_max_rows(fused ? 64 : 0);

  cudaStream_t stream;  // a blocking stream: the synchronous copies below order against it
  cudaStreamCreate(&stream);
  std::vector<int32_t> tables(blocks);
  for (int i = 0; i < blocks; ++i) tables[i] = i;
  Dev<int32_t> dtables(tables);
  for (const auto& pr : f.prompts) {
    const std::string tag = f.name + "/" + pr.name + (streaming ? " (streaming path)" : "") + (fused ? " (fused attention)" : "") +
                            (persistent ? " (persistent decode)" : "");
    const int n = static_cast<int>(pr.ids.size());
    std::vector<int32_t> pos(n), seq(n, 0);
    for (int i = 0; i < n; ++i) pos[i] = i;
    Dev<int32_t> dtok(pr.ids), dpos(pos), dseq(seq), qs(std::vector<int32_t>{0}), ql(std::vector<int32_t>{n}),
        cl(std::vector<int32_t>{n}), si(std::vector<int32_t>{0});
    cu::StepInput in;
    in.num_tokens = n;
    in.tokens = dtok.p;
    in.positions = dpos.p;
    in.slots = dpos.p;  // identity block table: slot == position
    in.token_seq = dseq.p;
    in.prefill = cu::PrefillBatch{1, n, n, qs.p, ql.p, cl.p, si.p, nullptr, nullptr, 0};
    in.tables = cu::PagedTables{dtables.p, blocks};
    in.num_logits = n;
    in.max_context = n;
    Dev<float> logits(size_t(n) * f.V);
    if (!Checks::get().status("parity prefill " + tag, fwd->run(in, logits.p, {}))) continue;
    const auto lg = logits.download();
    double max_diff = 0, sum_diff = 0;
    for (int i = 0; i + 1 < n; ++i) {
      const double diff = std::fabs(log_softmax_at(&lg[size_t(i) * f.V], f.V, pr.ids[i + 1]) - pr.logprobs[i]);
      max_diff = std::max(max_diff, diff);
      sum_diff += diff;
    }
    const double mean = sum_diff / std::max(1, n - 1);
    char note[128];
    std::snprintf(note, sizeof note, "max |dlogprob| %.4f (tol %.2f), mean %.4f (tol %.2f), %d positions", max_diff,
                  kMaxLogprobDiff, mean, kMeanLogprobDiff, n - 1);
    Checks::get().expect("model parity prompt logprobs " + tag, max_diff <= kMaxLogprobDiff && mean <= kMeanLogprobDiff, note);

    // Greedy: argmax of the last prompt row, then one decode step per token.
    int tok = 0;
    {
      const float* row = &lg[size_t(n - 1) * f.V];
      tok = static_cast<int>(std::max_element(row, row + f.V) - row);
    }
    int matched = 0, compared = 0;
    bool diverged = false;
    Dev<int32_t> t1(1), p1(1), s1(1), q1(std::vector<int32_t>{0});
    Dev<float> l1(f.V);
    for (size_t step = 0; step < pr.greedy.size(); ++step) {
      if (pr.margins[step] < kNearTie) break;  // near-tie: later tokens may legitimately differ
      ++compared;
      if (tok != pr.greedy[step]) { diverged = true; break; }
      ++matched;
      const int p = n + static_cast<int>(step);
      t1.upload({tok});
      p1.upload({p});
      cu::StepInput dstep;
      dstep.num_tokens = 1;
      dstep.num_decode = 1;
      dstep.tokens = t1.p;
      dstep.positions = p1.p;
      dstep.slots = p1.p;
      dstep.token_seq = q1.p;
      dstep.prefill = cu::PrefillBatch{0, 0, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0};
      dstep.tables = cu::PagedTables{dtables.p, blocks};
      dstep.num_logits = 1;
      dstep.max_context = p + 1;
      if (!Checks::get().status("parity decode " + tag, fwd->run(dstep, l1.p, cu::Exec{stream, true}))) break;
      if (step == 0) Checks::get().expect("decode step through the persistent kernel " + tag, fwd->last_run_persistent() == persistent);
      cudaStreamSynchronize(stream);
      const auto row = l1.download();
      tok = static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
    }
    Checks::get().expect("model parity greedy " + tag, !diverged,
                         std::to_string(matched) + "/" + std::to_string(compared) + " tokens equal before a near-tie");
  }
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace

int model_parity(const std::string& dir) {
  cu::LtContext* lt = nullptr;
  if (!Checks::get().status("parity lt_create", cu::lt_create(&lt, 32u << 20))) return 1;
  for (const char* name : {"tiny-a", "tiny-b", "tiny-yarn"}) {
    Fixture f;
    if (!Checks::get().expect(std::string("parity fixture ") + name, load_fixture(dir + "/" + name + ".txt", f),
                              "run scripts/gpu/export-fixtures.ts first"))
      continue;
    run_fixture(f, lt, false, false);
    run_fixture(f, lt, true, false);
    run_fixture(f, lt, true, true);
    if (cu::decode_persistent_supported(f.H, f.I, f.nh, f.nkv, cu::KvGeometry{1, 16, f.nkv, f.hd, cu::KvDtype::bf16}))
      run_fixture(f, lt, false, false, true);
    if (f.nkv % 2 == 0) tensor_parallel_parity(f);
  }
  cu::lt_destroy(lt);
  return 0;
}

}  // namespace harness
