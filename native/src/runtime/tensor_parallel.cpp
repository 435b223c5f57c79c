// Shard arithmetic, the step-batch wire format, and the leader / follower runners of a
// tensor-parallel group (runtime/tp_runner.h).
#include <algorithm>
#include <cstring>
#include <thread>

#include "grpst/common.h"
#include "grpst/tensor_store.h"
#include "runtime/tp_runner.h"

namespace grpst {

TpShard tp_shard(const ModelConfig& full, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size)
    throw Error("tensor parallel rank " + std::to_string(rank) + " of " + std::to_string(size) + " is out of range");
  const std::pair<const char*, int> dims[] = {{"num_key_value_heads", full.num_kv_heads},
                                              {"num_attention_heads", full.num_heads},
                                              {"intermediate_size", full.intermediate_size},
                                              {"vocab_size", full.vocab_size}};
  for (const auto& [name, n] : dims) {
    if (n % size != 0)
      throw Error("tensor parallel size " + std::to_string(size) + " does not divide " + name + " " + std::to_string(n) +
                  "; rebuild the engine with a --tp_size that divides the heads, KV heads, intermediate_size and vocab_size");
  }
  TpShard s;
  s.rank = rank;
  s.size = size;
  s.num_heads = full.num_heads / size;
  s.num_kv_heads = full.num_kv_heads / size;
  s.intermediate_size = full.intermediate_size / size;
  s.vocab_rows = full.vocab_size / size;
  s.vocab_start = rank * s.vocab_rows;
  return s;
}

ModelConfig shard_config(const ModelConfig& full, const TpShard& s) {
  ModelConfig c = full;
  c.num_heads = s.num_heads;
  c.num_kv_heads = s.num_kv_heads;
  c.intermediate_size = s.intermediate_size;
  c.vocab_size = s.vocab_rows;
  return c;
}

namespace {

// Every message is a fixed header, then `payload` bytes (a second broadcast when non-zero).
enum class Call : int64_t { AllocateKv = 1, Forward = 2, Stop = 3 };
constexpr int64_t kMagic = 0x67727073747470;  // "grpsttp"
struct Header {
  int64_t magic = kMagic;
  int64_t call = 0;
  int64_t payload = 0;  // bytes
  int64_t reserved = 0;
};

// Batch wire format, int32 words: T S L, tokens[T], per sequence (first_row num_tokens
// start_pos num_blocks table[num_blocks]), logit_rows[L]. Device draws stay on rank 0.
std::vector<int32_t> encode(const StepBatch& b) {
  std::vector<int32_t> w;
  w.reserve(3 + b.tokens.size() + b.logit_rows.size() + b.seqs.size() * 8);
  w.push_back(int32_t(b.tokens.size()));
  w.push_back(int32_t(b.seqs.size()));
  w.push_back(int32_t(b.logit_rows.size()));
  w.insert(w.end(), b.tokens.begin(), b.tokens.end());
  for (const SeqSlice& s : b.seqs) {
    w.push_back(s.first_row);
    w.push_back(s.num_tokens);
    w.push_back(s.start_pos);
    w.push_back(s.num_blocks);
    w.insert(w.end(), s.block_table, s.block_table + s.num_blocks);
  }
  w.insert(w.end(), b.logit_rows.begin(), b.logit_rows.end());
  return w;
}

// KV allocation: num_blocks block_size dtype L, then L k scales and L v scales (fp32 bits).
std::vector<int32_t> encode_kv(const KvCacheSpec& spec) {
  std::vector<int32_t> w = {spec.num_blocks, spec.block_size, int32_t(spec.dtype), int32_t(spec.k_scales.size())};
  for (const auto* v : {&spec.k_scales, &spec.v_scales}) {
    if (v->size() != spec.k_scales.size()) throw Error("tensor parallel: KV cache scales come in k / v pairs");
    for (float f : *v) {
      int32_t bits;
      std::memcpy(&bits, &f, 4);
      w.push_back(bits);
    }
  }
  return w;
}

KvCacheSpec decode_kv(const std::vector<int32_t>& w) {
  if (w.size() < 4 || w[3] < 0 || w.size() != 4 + 2 * size_t(w[3])) throw Error("tensor parallel: malformed KV allocation message");
  KvCacheSpec spec;
  spec.num_blocks = w[0];
  spec.block_size = w[1];
  spec.dtype = KvDType(w[2]);
  const size_t L = size_t(w[3]);
  auto floats = [&](size_t at) {
    std::vector<float> v(L);
    std::memcpy(v.data(), w.data() + at, L * 4);
    return v;
  };
  spec.k_scales = floats(4);
  spec.v_scales = floats(4 + L);
  return spec;
}

/** Rebuilds a batch whose block tables point into `w` (kept alive by the caller). */
StepBatch decode(const std::vector<int32_t>& w) {
  size_t i = 0;
  auto next = [&]() -> int32_t {
    if (i >= w.size()) throw Error("tensor parallel: a step message ended early");
    return w[i++];
  };
  StepBatch b;
  const int T = next(), S = next(), L = next();
  if (T < 0 || S < 0 || L < 0) throw Error("tensor parallel: a step message has negative counts");
  for (int t = 0; t < T; t++) b.tokens.push_back(next());
  for (int s = 0; s < S; s++) {
    SeqSlice sl;
    sl.first_row = next();
    sl.num_tokens = next();
    sl.start_pos = next();
    sl.num_blocks = next();
    if (sl.num_blocks < 0 || i + size_t(sl.num_blocks) > w.size()) throw Error("tensor parallel: a step message ended early");
    sl.block_table = w.data() + i;
    i += size_t(sl.num_blocks);
    b.seqs.push_back(sl);
  }
  for (int l = 0; l < L; l++) b.logit_rows.push_back(next());
  return b;
}

class TpLeader final : public ModelRunner {
 public:
  TpLeader(std::unique_ptr<ModelRunner> inner, Collective* comm, std::unique_ptr<TpGroupResources> owned)
      : inner_(std::move(inner)), comm_(comm), owned_(std::move(owned)) {}

  ~TpLeader() override {
    if (!failed_) {
      try {
        send(Call::Stop, nullptr, 0);
      } catch (...) {
        comm_->abort();
      }
    }
    inner_.reset();
    owned_.reset();  // joins follower threads, then closes the group
  }

  const ModelConfig& config() const override { return inner_->config(); }
  std::string device() const override { return inner_->device(); }
  std::string kernels() const override {
    return inner_->kernels() + ", tensor parallel " + std::to_string(comm_->size()) + " (" + comm_->describe() + ")";
  }
  int threads() const override { return inner_->threads(); }
  size_t kv_bytes_per_token(KvDType d) const override { return inner_->kv_bytes_per_token(d); }
  int64_t weight_bytes_per_step() const override { return inner_->weight_bytes_per_step(); }
  bool samples_on_device() const override { return inner_->samples_on_device(); }

  void allocate_kv(const KvCacheSpec& spec) override {
    const std::vector<int32_t> words = encode_kv(spec);
    guarded([&] {
      send(Call::AllocateKv, words.data(), words.size() * 4);
      inner_->allocate_kv(spec);
    });
  }
  void forward(const StepBatch& batch, float* logits) override {
    guarded([&] {
      send_batch(batch);
      inner_->forward(batch, logits);
    });
  }
  const float* forward_sampled(const StepBatch& batch, float* logits, DeviceDrawResults& draws,
                               const std::function<void()>& before_draws) override {
    const float* rows = logits;
    guarded([&] {
      send_batch(batch);
      rows = inner_->forward_sampled(batch, logits, draws, before_draws);
    });
    return rows;
  }
  // The residual stream is whole on every rank after each all-reduce: rank 0's own rows answer,
  // no collective needed.
  void final_hidden(const std::vector<int32_t>& rows, float* out) override { inner_->final_hidden(rows, out); }

 private:
  template <typename F>
  void guarded(F&& f) {
    if (failed_) throw Error("the tensor parallel group stopped after an earlier failure; restart the server");
    try {
      f();
    } catch (...) {
      failed_ = true;
      comm_->abort();
      throw;
    }
  }
  void send_batch(const StepBatch& b) {
    const std::vector<int32_t> w = encode(b);
    send(Call::Forward, w.data(), w.size() * 4);
  }
  void send(Call call, const void* payload, size_t bytes) {
    Header h;
    h.call = int64_t(call);
    h.payload = int64_t(bytes);
    comm_->broadcast_host(&h, sizeof(h));
    if (bytes) {
      buf_.assign(static_cast<const uint8_t*>(payload), static_cast<const uint8_t*>(payload) + bytes);
      comm_->broadcast_host(buf_.data(), bytes);
    }
  }

  std::unique_ptr<ModelRunner> inner_;
  Collective* comm_;
  std::unique_ptr<TpGroupResources> owned_;
  std::vector<uint8_t> buf_;
  bool failed_ = false;
};

}  // namespace

std::unique_ptr<ModelRunner> make_tp_leader(std::unique_ptr<ModelRunner> inner, Collective* comm,
                                            std::unique_ptr<TpGroupResources> owned) {
  if (!comm || comm->rank() != 0) throw Error("the tensor parallel leader must be rank 0 of its group");
  return std::make_unique<TpLeader>(std::move(inner), comm, std::move(owned));
}

void run_tp_follower(ModelRunner& runner, Collective& comm) {
  std::vector<int32_t> words;
  try {
    for (;;) {
      Header h;
      comm.broadcast_host(&h, sizeof(h));
      if (h.magic != kMagic || h.payload < 0 || h.payload % 4 != 0)
        throw Error("tensor parallel: rank " + std::to_string(comm.rank()) + " received a malformed message");
      words.resize(size_t(h.payload) / 4);
      if (h.payload) comm.broadcast_host(words.data(), size_t(h.payload));
      switch (Call(h.call)) {
        case Call::Stop:
          return;
        case Call::AllocateKv:
          runner.allocate_kv(decode_kv(words));
          break;
        case Call::Forward:
          // Rank 0 returns the logits: this rank runs its share of the step and its collectives only.
          runner.forward(decode(words), nullptr);
          break;
        default:
          throw Error("tensor parallel: unknown call " + std::to_string(h.call));
      }
    }
  } catch (...) {
    comm.abort();
    throw;
  }
}

namespace {

struct InProcessGroup final : TpGroupResources {
  std::vector<std::unique_ptr<Collective>> members;
  std::vector<std::unique_ptr<ModelRunner>> runners;  // ranks 1..N-1
  std::vector<std::thread> threads;
  ~InProcessGroup() override {
    for (auto& t : threads)
      if (t.joinable()) t.join();
    runners.clear();
  }
};

}  // namespace

std::unique_ptr<ModelRunner> make_in_process_tp(const ModelConfig& full, std::vector<std::shared_ptr<TensorStore>> stores,
                                                const CpuRunnerOptions& opts) {
  const int n = int(stores.size());
  auto group = std::make_unique<InProcessGroup>();
  group->members = make_in_process_group(n);
  std::unique_ptr<ModelRunner> leader;
  for (int r = 0; r < n; r++) {
    CpuRunnerOptions o = opts;
    o.tp.shard = tp_shard(full, r, n);
    o.tp.comm = group->members[r].get();
    auto runner = make_cpu_runner(full, stores[r], o);
    if (r == 0) leader = std::move(runner);
    else group->runners.push_back(std::move(runner));
  }
  for (int r = 1; r < n; r++) {
    ModelRunner* runner = group->runners[r - 1].get();
    Collective* comm = group->members[r].get();
    group->threads.emplace_back([runner, comm] {
      try {
        run_tp_follower(*runner, *comm);
      } catch (...) {
        // The group is aborted; rank 0 reports the failure through its own call.
      }
    });
  }
  Collective* comm0 = group->members[0].get();
  return make_tp_leader(std::move(leader), comm0, std::move(group));
}

}  // namespace grpst
