// Whole-model parity on the GPU: the tiny fixture checkpoints (weights regenerated from the same
// hash as src/model/tiny-checkpoint.ts) run through the CUDA forward in bf16 and are compared
// with the transformers references in test/fixtures (exported to text by
// scripts/gpu/export-fixtures.ts): every prompt logprob within a bf16 tolerance, and the 24
// greedy tokens equal until the reference's top-2 margin falls under a near-tie threshold.
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "../../../native/src/runtime/cuda_forward.h"
#include "harness.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

// Tolerances (bf16 activations against the fp32 reference).
constexpr double kMaxLogprobDiff = 0.25;
constexpr double kMeanLogprobDiff = 0.06;
constexpr double kNearTie = 0.1;  // greedy comparison stops at the first reference margin below this

struct PromptRef {
  std::string name;
  std::vector<int32_t> ids, greedy;
  std::vector<double> logprobs, margins;
};
struct Fixture {
  std::string name;
  uint32_t seed = 0;
  int H = 0, I = 0, L = 0, nh = 0, nkv = 0, hd = 0, V = 0;
  float eps = 1e-6f, attention_scaling = 1.f;
  bool tie = false;
  std::vector<float> inv_freq;
  std::map<std::string, std::pair<double, double>> init;  // kind -> (bound or bound*sqrt(fan_in), offset)
  std::vector<PromptRef> prompts;
};

bool load_fixture(const std::string& path, Fixture& f) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string key;
    ss >> key;
    if (key == "checkpoint") ss >> f.name;
    else if (key == "seed") ss >> f.seed;
    else if (key == "dims") ss >> f.H >> f.I >> f.L >> f.nh >> f.nkv >> f.hd >> f.V;
    else if (key == "eps") ss >> f.eps;
    else if (key == "tie") { int t; ss >> t; f.tie = t != 0; }
    else if (key == "attention_scaling") ss >> f.attention_scaling;
    else if (key == "inv_freq") { int n; ss >> n; f.inv_freq.resize(n); for (auto& v : f.inv_freq) ss >> v; }
    else if (key == "init") { std::string kind; double a, b; ss >> kind >> a >> b; f.init[kind] = {a, b}; }
    else if (key == "prompt") { f.prompts.emplace_back(); ss >> f.prompts.back().name; }
    else if (key == "ids") { int n; ss >> n; auto& v = f.prompts.back().ids; v.resize(n); for (auto& x : v) ss >> x; }
    else if (key == "logprobs") { int n; ss >> n; auto& v = f.prompts.back().logprobs; v.resize(n); for (auto& x : v) ss >> x; }
    else if (key == "greedy") { int n; ss >> n; auto& v = f.prompts.back().greedy; v.resize(n); for (auto& x : v) ss >> x; }
    else if (key == "margins") { int n; ss >> n; auto& v = f.prompts.back().margins; v.resize(n); for (auto& x : v) ss >> x; }
  }
  return f.H > 0 && !f.prompts.empty();
}

uint32_t fnv1a32(const std::string& s) {
  uint32_t h = 0x811C9DC5u;
  for (unsigned char c : s) { h ^= c; h *= 0x01000193u; }
  return h;
}
uint32_t mix32(uint32_t x) {
  x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; x ^= x >> 16;
  return x;
}
std::vector<uint16_t> tensor_values(const Fixture& f, const std::string& name, const std::string& kind, size_t count, int fan_in) {
  const auto rule = f.init.at(kind);
  const double bound = kind == "linear" ? rule.first / std::sqrt(static_cast<double>(fan_in)) : rule.first;
  const uint32_t tseed = (f.seed * 0x9E3779B1u) ^ fnv1a32(name);
  std::vector<uint16_t> out(count);
  for (size_t i = 0; i < count; ++i) {
    const uint32_t v = mix32(static_cast<uint32_t>(i) * 0x9E3779B9u + tseed);
    const double u = static_cast<double>(v >> 8) / 16777216.0;
    const float x = static_cast<float>((2.0 * u - 1.0) * bound + rule.second);
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    out[i] = static_cast<uint16_t>((static_cast<uint64_t>(bits) + 0x7FFF + ((bits >> 16) & 1)) >> 16);
  }
  return out;
}

struct DevModel {
  std::vector<void*> ptrs;
  ~DevModel() { for (void* p : ptrs) cudaFree(p); }
  template <class T>
  const T* up(const std::vector<T>& v) {
    void* p = nullptr;
    cudaMalloc(&p, v.size() * sizeof(T));
    cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
    ptrs.push_back(p);
    return static_cast<const T*>(p);
  }
  const cu::bf16* bf(const std::vector<uint16_t>& v) { return reinterpret_cast<const cu::bf16*>(up(v)); }
  // norm weights: fp32 on the device, as engines store them (bf16 -> fp32 is exact)
  const float* f32(const std::vector<uint16_t>& v) { return up(harness::bf16_to_f32(v)); }
  void* raw(size_t bytes) {
    void* p = nullptr;
    cudaMalloc(&p, bytes);
    cudaMemset(p, 0, bytes);
    ptrs.push_back(p);
    return p;
  }
};

cu::Weight bf16_weight(DevModel& dm, const std::vector<uint16_t>& v, int N, int K) {
  cu::Weight w;
  w.N = N;
  w.K = K;
  w.data = dm.up(v);
  return w;
}

double log_softmax_at(const float* row, int V, int id) {
  double mx = -1e30, z = 0;
  for (int i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(row[i]));
  for (int i = 0; i < V; ++i) z += std::exp(row[i] - mx);
  return row[id] - mx - std::log(z);
}

int run_fixture(const Fixture& f, cu::LtContext* lt) {
  const std::string L = "model." , P = "model.layers.";
  DevModel dm;
  cu::ModelDims d;
  d.hidden = f.H; d.intermediate = f.I; d.layers = f.L; d.heads = f.nh; d.kv_heads = f.nkv; d.head_dim = f.hd; d.vocab = f.V; d.eps = f.eps;
  cu::ModelWeights w;
  const auto embed = tensor_values(f, "model.embed_tokens.weight", "embed_tokens", size_t(f.V) * f.H, f.H);
  w.embed = dm.bf(embed);
  w.final_norm = dm.f32(tensor_values(f, "model.norm.weight", "norm", f.H, 0));
  w.lm_head = f.tie ? bf16_weight(dm, embed, f.V, f.H)
                    : bf16_weight(dm, tensor_values(f, "lm_head.weight", "lm_head", size_t(f.V) * f.H, f.H), f.V, f.H);
  const int q = f.nh * f.hd, kv = f.nkv * f.hd;
  for (int l = 0; l < f.L; ++l) {
    const std::string p = P + std::to_string(l) + ".";
    cu::LayerWeights lw;
    lw.input_norm = dm.f32(tensor_values(f, p + "input_layernorm.weight", "norm", f.H, 0));
    lw.post_norm = dm.f32(tensor_values(f, p + "post_attention_layernorm.weight", "norm", f.H, 0));
    lw.q_norm = dm.f32(tensor_values(f, p + "self_attn.q_norm.weight", "norm", f.hd, 0));
    lw.k_norm = dm.f32(tensor_values(f, p + "self_attn.k_norm.weight", "norm", f.hd, 0));
    auto wq = tensor_values(f, p + "self_attn.q_proj.weight", "linear", size_t(q) * f.H, f.H);
    auto wk = tensor_values(f, p + "self_attn.k_proj.weight", "linear", size_t(kv) * f.H, f.H);
    auto wv = tensor_values(f, p + "self_attn.v_proj.weight", "linear", size_t(kv) * f.H, f.H);
    std::vector<uint16_t> qkv(wq);
    qkv.insert(qkv.end(), wk.begin(), wk.end());
    qkv.insert(qkv.end(), wv.begin(), wv.end());
    lw.qkv = bf16_weight(dm, qkv, q + 2 * kv, f.H);
    lw.o = bf16_weight(dm, tensor_values(f, p + "self_attn.o_proj.weight", "linear", size_t(f.H) * q, q), f.H, q);
    auto g = tensor_values(f, p + "mlp.gate_proj.weight", "linear", size_t(f.I) * f.H, f.H);
    auto u = tensor_values(f, p + "mlp.up_proj.weight", "linear", size_t(f.I) * f.H, f.H);
    std::vector<uint16_t> gu(size_t(2) * f.I * f.H);
    for (int j = 0; j < f.I; ++j) {
      std::copy_n(g.begin() + size_t(j) * f.H, f.H, gu.begin() + size_t(2 * j) * f.H);
      std::copy_n(u.begin() + size_t(j) * f.H, f.H, gu.begin() + size_t(2 * j + 1) * f.H);
    }
    lw.gate_up = bf16_weight(dm, gu, 2 * f.I, f.H);
    lw.down = bf16_weight(dm, tensor_values(f, p + "mlp.down_proj.weight", "linear", size_t(f.H) * f.I, f.I), f.H, f.I);
    w.layers.push_back(lw);
  }
  w.inv_freq = dm.up(f.inv_freq);
  w.attention_scaling = f.attention_scaling;
  const int max_len = 512, blocks = max_len / 16;
  cu::KvCache cache;
  cache.geo = cu::KvGeometry{blocks, 16, f.nkv, f.hd, cu::KvDtype::bf16};
  for (int l = 0; l < f.L; ++l) {
    const size_t bytes = size_t(blocks) * f.nkv * 16 * f.hd * 2;
    cache.layers.push_back(cu::KvLayer{dm.raw(bytes), dm.raw(bytes), 1.f, 1.f});
  }
  cu::ForwardLimits lim;
  lim.max_tokens = max_len;
  lim.max_logits = max_len;
  std::unique_ptr<cu::Forward> fwd;
  if (!Checks::get().status("parity Forward::create " + f.name, cu::Forward::create(d, w, lim, lt, 132, &fwd)) ||
      !Checks::get().status("parity Forward::set_kv " + f.name, fwd->set_kv(cache)))
    return 1;

  cudaStream_t stream;  // a blocking stream: the synchronous copies below order against it
  cudaStreamCreate(&stream);
  std::vector<int32_t> tables(blocks);
  for (int i = 0; i < blocks; ++i) tables[i] = i;
  Dev<int32_t> dtables(tables);
  for (const auto& pr : f.prompts) {
    const std::string tag = f.name + "/" + pr.name;
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
    run_fixture(f, lt);
  }
  cu::lt_destroy(lt);
  return 0;
}

}  // namespace harness
