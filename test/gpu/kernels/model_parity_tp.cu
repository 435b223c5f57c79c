// Tensor parallelism's GPU forward with two ranks on one GPU: each rank's Forward holds its shard
// of a tiny fixture (fixture_model.h) and combines partial results through the runtime's hooks
// (runtime/cuda_tp.cu: vocabulary-masked embedding, all-reduce after o_proj and down_proj, the
// logits all-gather), rank 1 storing its o_proj / down_proj partial sums where rank 0 adds the
// residual. NCCL refuses two ranks on one device, so the two ranks are threads joined by a group
// that combines through host memory: each collective waits for its member's stream, sums in rank
// order in fp32 and rounds once (as NCCL's two-rank sum does). That rules out CUDA graphs, not the
// arithmetic. Checked: prompt logprobs and greedy tokens of two ranks against one rank (the same
// code without hooks) and against transformers. Real 2- and 4-GPU groups go through NCCL
// (test/gpu/tp-checks.ts covers a one-rank NCCL group).
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "../../../native/src/runtime/cuda_tp.h"
#include "fixture_model.h"
#include "grpst/collective.h"
#include "grpst/common.h"
#include "grpst/tensor_parallel.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

// The bf16 tolerance of the single-GPU parity run (model_parity.cu), with a mean of 0.1 instead
// of 0.06: each row-parallel layer rounds the residual stream once more (rank 0's residual +
// partial sum to bf16, then the all-reduce's sum to bf16), which these random-weight models
// amplify (a first run measured mean 0.062 against one rank and 0.070 against transformers on
// tiny-b's chat prompt). Greedy comparisons stop at the first top-2 margin under kNearTie.
constexpr double kMaxLogprobDiff = 0.25;
constexpr double kMeanLogprobDiff = 0.1;
constexpr double kNearTie = 0.1;
constexpr int kMaxLen = 512, kSteps = 24;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw grpst::Error(std::string(what) + ": " + cudaGetErrorString(e));
}
void check(const cu::Status& s) {
  if (!s.ok()) throw grpst::Error(s.message());
}

// The members' meeting point: a reusable barrier and one published pointer per member.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : size(n), slots(n, nullptr) {}
  const int size;
  std::vector<const void*> slots;

  void barrier() {
    std::unique_lock<std::mutex> lock(mu_);
    if (aborted_) throw grpst::Error("the group was aborted: another rank failed");
    const uint64_t gen = gen_;
    if (++arrived_ == size) {
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return gen_ != gen || aborted_; });
    if (gen_ == gen) throw grpst::Error("the group was aborted: another rank failed");
  }
  void abort() {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t gen_ = 0;
  bool aborted_ = false;
};

class ThreadMember final : public grpst::Collective {
 public:
  ThreadMember(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size; }
  std::string name() const override { return "threads"; }
  bool on_device() const override { return true; }

  // Every copy goes on the member's own stream, which is then waited for: a plain cudaMemcpy from
  // pageable memory (or device to device) may return before its data lands, unordered with the
  // member's non-blocking stream.
  void all_reduce_sum(void* buf, size_t count, grpst::CollDType type, void* stream) override {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    check(cudaStreamSynchronize(s), "all-reduce");
    g_.slots[rank_] = buf;
    g_.barrier();
    const bool f32 = type == grpst::CollDType::F32;
    std::vector<uint8_t> raw(count * (f32 ? 4 : 2));
    std::vector<float> sum(count, 0.f);
    for (int r = 0; r < g_.size; ++r) {
      check(cudaMemcpyAsync(raw.data(), g_.slots[r], raw.size(), cudaMemcpyDeviceToHost, s), "all-reduce read");
      check(cudaStreamSynchronize(s), "all-reduce read");
      for (size_t i = 0; i < count; ++i)
        sum[i] += f32 ? reinterpret_cast<const float*>(raw.data())[i] : bf2f(reinterpret_cast<const uint16_t*>(raw.data())[i]);
    }
    g_.barrier();  // every member has read every buffer before any is overwritten
    for (size_t i = 0; i < count; ++i) {
      if (f32) reinterpret_cast<float*>(raw.data())[i] = sum[i];
      else reinterpret_cast<uint16_t*>(raw.data())[i] = f2bf(sum[i]);
    }
    check(cudaMemcpyAsync(buf, raw.data(), raw.size(), cudaMemcpyHostToDevice, s), "all-reduce write");
    check(cudaStreamSynchronize(s), "all-reduce write");
  }

  void all_gather(const void* send, void* recv, size_t count, grpst::CollDType type, void* stream) override {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    check(cudaStreamSynchronize(s), "all-gather");
    g_.slots[rank_] = send;
    g_.barrier();
    const size_t bytes = count * (type == grpst::CollDType::F32 ? 4 : 2);
    for (int r = 0; r < g_.size; ++r)
      check(cudaMemcpyAsync(static_cast<uint8_t*>(recv) + r * bytes, g_.slots[r], bytes, cudaMemcpyDeviceToDevice, s), "all-gather");
    check(cudaStreamSynchronize(s), "all-gather");
    g_.barrier();  // no member changes its send buffer before every member has copied it
  }

  void broadcast_host(void* buf, size_t bytes) override {
    g_.slots[rank_] = buf;
    g_.barrier();
    if (rank_ != 0) std::memcpy(buf, g_.slots[0], bytes);
    g_.barrier();
  }

  void abort() override { g_.abort(); }

 private:
  ThreadGroup& g_;
  int rank_;
};

template <class T>
struct Buf {  // device buffer that throws instead of reporting (ranks run in threads)
  T* p = nullptr;
  explicit Buf(size_t n) { check(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc"); }
  explicit Buf(const std::vector<T>& v) : Buf(v.size()) { put(v); }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  void put(const std::vector<T>& v) { check(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "upload"); }
};

struct PromptRun {
  std::vector<double> logprobs;  // [n - 1] log p(ids[i + 1]) at each prompt position
  std::vector<int> tokens;       // [kSteps] greedy tokens
  std::vector<double> margins;   // [kSteps] their top-2 margins
};
struct RankResult {
  std::vector<PromptRun> prompts;
  std::string error;
};

int argmax(const float* row, int V) { return static_cast<int>(std::max_element(row, row + V) - row); }

// One rank's runs over every prompt: a prefill, then kSteps greedy decode steps (eager: the
// collectives wait on the host). Every rank of a group runs the same steps (the collectives pair
// them up) and ends each with the whole [rows, V] logits; rank 0 records the results.
void run_rank(const Fixture& f, int rank, int size, grpst::Collective* comm, RankResult& out) {
  try {
    check(cudaSetDevice(0), "cudaSetDevice");
    FixtureModel m;
    if (!upload_fixture(f, rank, size, kMaxLen, m)) throw grpst::Error("uploading the shard failed");
    cu::LtContext* lt_raw = nullptr;
    check(cu::lt_create(&lt_raw, 32u << 20));
    std::unique_ptr<cu::LtContext, void (*)(cu::LtContext*)> lt(lt_raw, cu::lt_destroy);
    cu::ForwardLimits lim;
    lim.max_tokens = kMaxLen;
    lim.max_logits = kMaxLen;
    std::unique_ptr<cu::Forward> fwd;
    check(cu::Forward::create(m.d, m.w, lim, lt.get(), 132, &fwd));
    check(fwd->set_kv(m.cache));
    std::unique_ptr<cu::TensorParallelHooks> hooks;
    if (comm) {
      grpst::TpShard s;
      s.rank = rank;
      s.size = size;
      s.num_heads = m.d.heads;
      s.num_kv_heads = m.d.kv_heads;
      s.intermediate_size = m.d.intermediate;
      s.vocab_rows = m.d.vocab;
      s.vocab_start = rank * m.d.vocab;
      hooks = cu::make_tensor_parallel_hooks(comm, s, f.V, kMaxLen, kMaxLen);
      fwd->set_tensor_parallel(hooks.get());
    }
    cudaStream_t stream = nullptr;
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    std::unique_ptr<CUstream_st, cudaError_t (*)(cudaStream_t)> stream_guard(stream, cudaStreamDestroy);
    const cu::Exec ex{stream, false};
    std::vector<int32_t> table(m.blocks);
    for (int i = 0; i < m.blocks; ++i) table[i] = i;
    Buf<int32_t> dtable(table), zero(std::vector<int32_t>{0}), tok1(1), pos1(1);
    Buf<float> logits(size_t(kMaxLen) * f.V);
    for (const auto& pr : f.prompts) {
      const int n = static_cast<int>(pr.ids.size());
      std::vector<int32_t> pos(n), seq(n, 0);
      for (int i = 0; i < n; ++i) pos[i] = i;
      Buf<int32_t> dtok(pr.ids), dpos(pos), dseq(seq), ql(std::vector<int32_t>{n});
      cu::StepInput in;
      in.num_tokens = n;
      in.tokens = dtok.p;
      in.positions = dpos.p;
      in.slots = dpos.p;  // identity block table: slot == position
      in.token_seq = dseq.p;
      in.prefill = cu::PrefillBatch{1, n, n, zero.p, ql.p, ql.p, zero.p, nullptr, nullptr, 0};
      in.tables = cu::PagedTables{dtable.p, m.blocks};
      in.num_logits = n;
      in.max_context = n;
      check(fwd->run(in, logits.p, ex));
      check(cudaStreamSynchronize(stream), "prefill");
      PromptRun run;
      std::vector<float> lg(size_t(n) * f.V);
      check(cudaMemcpy(lg.data(), logits.p, lg.size() * 4, cudaMemcpyDeviceToHost), "logits");
      if (rank == 0)
        for (int i = 0; i + 1 < n; ++i) run.logprobs.push_back(log_softmax_at(&lg[size_t(i) * f.V], f.V, pr.ids[i + 1]));
      std::vector<float> row(lg.end() - f.V, lg.end());
      for (int step = 0; step < kSteps; ++step) {
        const int tok = argmax(row.data(), f.V);
        run.tokens.push_back(tok);
        run.margins.push_back(top2_margin(row.data(), f.V));
        tok1.put({tok});
        pos1.put({n + step});
        cu::StepInput d;
        d.num_tokens = 1;
        d.num_decode = 1;
        d.tokens = tok1.p;
        d.positions = pos1.p;
        d.slots = pos1.p;
        d.token_seq = zero.p;
        d.prefill = cu::PrefillBatch{0, 0, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0};
        d.tables = cu::PagedTables{dtable.p, m.blocks};
        d.num_logits = 1;
        d.max_context = n + step + 1;
        check(fwd->run(d, logits.p, ex));
        check(cudaStreamSynchronize(stream), "decode");
        check(cudaMemcpy(row.data(), logits.p, size_t(f.V) * 4, cudaMemcpyDeviceToHost), "logits");
      }
      out.prompts.push_back(std::move(run));
    }
  } catch (const std::exception& e) {
    out.error = e.what();
    if (comm) comm->abort();  // the other rank leaves its collective instead of waiting forever
  }
}

struct Diff {
  double max = 0, mean = 0;
};
Diff diff(const std::vector<double>& a, const std::vector<double>& b) {
  Diff d;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const double x = std::fabs(a[i] - b[i]);
    d.max = std::max(d.max, x);
    d.mean += x;
  }
  d.mean /= std::max<size_t>(1, n);
  if (a.size() != b.size()) d.max = INFINITY;
  return d;
}
std::string describe(const Diff& d) {
  char s[128];
  std::snprintf(s, sizeof s, "max |dlogprob| %.4f (tol %.2f), mean %.4f (tol %.2f)", d.max, kMaxLogprobDiff, d.mean, kMeanLogprobDiff);
  return s;
}
bool within(const Diff& d) { return d.max <= kMaxLogprobDiff && d.mean <= kMeanLogprobDiff; }

}  // namespace

void tensor_parallel_parity(const Fixture& f) {
  const std::string tag = "tp2 " + f.name;
  RankResult one;
  run_rank(f, 0, 1, nullptr, one);
  ThreadGroup group(2);
  ThreadMember m0(group, 0), m1(group, 1);
  RankResult r0, r1;
  std::thread t1([&] { run_rank(f, 1, 2, &m1, r1); });
  run_rank(f, 0, 2, &m0, r0);
  t1.join();
  if (!Checks::get().expect(tag + " one rank ran", one.error.empty(), one.error) ||
      !Checks::get().expect(tag + " two ranks ran", r0.error.empty() && r1.error.empty(), r0.error + " " + r1.error))
    return;
  for (size_t i = 0; i < f.prompts.size(); ++i) {
    const PromptRef& pr = f.prompts[i];
    const PromptRun &a = one.prompts[i], &b = r0.prompts[i];
    const std::string p = tag + "/" + pr.name;
    const Diff vs_one = diff(b.logprobs, a.logprobs), vs_ref = diff(b.logprobs, pr.logprobs);
    Checks::get().expect(p + " prompt logprobs: two ranks vs one", within(vs_one), describe(vs_one));
    Checks::get().expect(p + " prompt logprobs: two ranks vs transformers", within(vs_ref), describe(vs_ref));
    int n = 0;  // steps before either run's near-tie
    while (n < kSteps && a.margins[n] >= kNearTie && b.margins[n] >= kNearTie) ++n;
    const bool same = std::equal(a.tokens.begin(), a.tokens.begin() + n, b.tokens.begin());
    Checks::get().expect(p + " greedy tokens: two ranks = one", same, std::to_string(n) + " tokens before a near-tie");
    int nr = 0;  // steps before the reference's near-tie
    while (nr < static_cast<int>(pr.greedy.size()) && nr < kSteps && pr.margins[nr] >= kNearTie) ++nr;
    const bool same_ref = std::equal(pr.greedy.begin(), pr.greedy.begin() + nr, b.tokens.begin());
    Checks::get().expect(p + " greedy tokens: two ranks = transformers", same_ref, std::to_string(nr) + " tokens before a near-tie");
  }
}

}  // namespace harness
