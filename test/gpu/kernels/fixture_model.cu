#include "fixture_model.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace harness {
namespace cu = grpst::cuda;

namespace {

uint32_t fnv1a32(const std::string& s) {
  uint32_t h = 0x811C9DC5u;
  for (unsigned char c : s) { h ^= c; h *= 0x01000193u; }
  return h;
}
uint32_t mix32(uint32_t x) {
  x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; x ^= x >> 16;
  return x;
}

// The tensor `name` as src/model/tiny-checkpoint.ts writes it: bf16 values of a hash of
// (seed, name, index), uniform in [-bound, bound] + offset.
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

using V16 = std::vector<uint16_t>;

// Rows [r0, r0 + n) of a row-major [*, cols] matrix.
V16 rows(const V16& m, int cols, int r0, int n) {
  return V16(m.begin() + static_cast<size_t>(r0) * cols, m.begin() + static_cast<size_t>(r0 + n) * cols);
}
// Columns [c0, c0 + n) of a row-major [R, cols] matrix.
V16 cols(const V16& m, int R, int ncols, int c0, int n) {
  V16 out(static_cast<size_t>(R) * n);
  for (int r = 0; r < R; ++r)
    std::copy_n(m.begin() + static_cast<size_t>(r) * ncols + c0, n, out.begin() + static_cast<size_t>(r) * n);
  return out;
}

cu::Weight bf16_weight(DevModel& dm, const V16& v, int N, int K) {
  cu::Weight w;
  w.N = N;
  w.K = K;
  w.data = dm.up(v.data(), v.size() * 2);
  return w;
}
// Norm weights: fp32 on the device, as engines store them (bf16 -> fp32 is exact).
const float* f32(DevModel& dm, const V16& v) {
  const auto f = bf16_to_f32(v);
  return static_cast<const float*>(dm.up(f.data(), f.size() * 4));
}

}  // namespace

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

DevModel::~DevModel() {
  for (void* p : ptrs) cudaFree(p);
}
const void* DevModel::up(const void* data, size_t bytes) {
  void* p = zeros(bytes);
  if (p && cudaMemcpy(p, data, bytes, cudaMemcpyHostToDevice) != cudaSuccess) failed = true;
  return p;
}
void* DevModel::zeros(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess || cudaMemset(p, 0, bytes) != cudaSuccess) {
    failed = true;
    return p;
  }
  ptrs.push_back(p);
  return p;
}

bool upload_fixture(const Fixture& f, int rank, int size, int max_len, FixtureModel& m) {
  const std::string P = "model.layers.";
  DevModel& dm = m.mem;
  const int nh = f.nh / size, nkv = f.nkv / size, I = f.I / size, Vl = f.V / size, vs = rank * Vl;
  const int q = f.nh * f.hd, kv = f.nkv * f.hd, ql = nh * f.hd, kvl = nkv * f.hd;
  m.d = cu::ModelDims{f.H, I, f.L, nh, nkv, f.hd, Vl, f.eps};
  const V16 embed = tensor_values(f, "model.embed_tokens.weight", "embed_tokens", size_t(f.V) * f.H, f.H);
  const V16 embed_l = rows(embed, f.H, vs, Vl);
  m.w.embed = static_cast<const cu::bf16*>(dm.up(embed_l.data(), embed_l.size() * 2));
  m.w.final_norm = f32(dm, tensor_values(f, "model.norm.weight", "norm", f.H, 0));
  m.w.lm_head = f.tie ? bf16_weight(dm, embed_l, Vl, f.H)
                      : bf16_weight(dm, rows(tensor_values(f, "lm_head.weight", "lm_head", size_t(f.V) * f.H, f.H), f.H, vs, Vl),
                                    Vl, f.H);
  m.w.layers.clear();
  for (int l = 0; l < f.L; ++l) {
    const std::string p = P + std::to_string(l) + ".";
    cu::LayerWeights lw;
    lw.input_norm = f32(dm, tensor_values(f, p + "input_layernorm.weight", "norm", f.H, 0));
    lw.post_norm = f32(dm, tensor_values(f, p + "post_attention_layernorm.weight", "norm", f.H, 0));
    lw.q_norm = f32(dm, tensor_values(f, p + "self_attn.q_norm.weight", "norm", f.hd, 0));
    lw.k_norm = f32(dm, tensor_values(f, p + "self_attn.k_norm.weight", "norm", f.hd, 0));
    // qkv [(nh + 2 nkv) hd, H]: this rank's query heads, then its KV heads' k and v rows.
    V16 qkv = rows(tensor_values(f, p + "self_attn.q_proj.weight", "linear", size_t(q) * f.H, f.H), f.H, rank * ql, ql);
    const V16 wk = rows(tensor_values(f, p + "self_attn.k_proj.weight", "linear", size_t(kv) * f.H, f.H), f.H, rank * kvl, kvl);
    const V16 wv = rows(tensor_values(f, p + "self_attn.v_proj.weight", "linear", size_t(kv) * f.H, f.H), f.H, rank * kvl, kvl);
    qkv.insert(qkv.end(), wk.begin(), wk.end());
    qkv.insert(qkv.end(), wv.begin(), wv.end());
    lw.qkv = bf16_weight(dm, qkv, ql + 2 * kvl, f.H);
    // o_proj [H, nh hd]: the columns of this rank's heads (row-parallel).
    lw.o = bf16_weight(dm, cols(tensor_values(f, p + "self_attn.o_proj.weight", "linear", size_t(f.H) * q, q), f.H, q, rank * ql, ql),
                       f.H, ql);
    // gate_up [2I, H]: this rank's channels, gate and up rows interleaved as the runner loads them.
    const V16 g = tensor_values(f, p + "mlp.gate_proj.weight", "linear", size_t(f.I) * f.H, f.H);
    const V16 u = tensor_values(f, p + "mlp.up_proj.weight", "linear", size_t(f.I) * f.H, f.H);
    V16 gu(size_t(2) * I * f.H);
    for (int j = 0; j < I; ++j) {
      std::copy_n(g.begin() + size_t(rank * I + j) * f.H, f.H, gu.begin() + size_t(2 * j) * f.H);
      std::copy_n(u.begin() + size_t(rank * I + j) * f.H, f.H, gu.begin() + size_t(2 * j + 1) * f.H);
    }
    lw.gate_up = bf16_weight(dm, gu, 2 * I, f.H);
    // down_proj [H, I]: the columns of this rank's channels (row-parallel).
    lw.down = bf16_weight(dm, cols(tensor_values(f, p + "mlp.down_proj.weight", "linear", size_t(f.H) * f.I, f.I), f.H, f.I, rank * I, I),
                          f.H, I);
    m.w.layers.push_back(lw);
  }
  m.w.inv_freq = static_cast<const float*>(dm.up(f.inv_freq.data(), f.inv_freq.size() * 4));
  m.w.attention_scaling = f.attention_scaling;
  m.blocks = (max_len + 15) / 16;
  m.cache.geo = cu::KvGeometry{m.blocks, 16, nkv, f.hd, cu::KvDtype::bf16};
  m.cache.layers.clear();
  for (int l = 0; l < f.L; ++l) {
    const size_t bytes = size_t(m.blocks) * nkv * 16 * f.hd * 2;
    m.cache.layers.push_back(cu::KvLayer{dm.zeros(bytes), dm.zeros(bytes), 1.f, 1.f});
  }
  return !dm.failed;
}

double log_softmax_at(const float* row, int V, int id) {
  double mx = -1e30, z = 0;
  for (int i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(row[i]));
  for (int i = 0; i < V; ++i) z += std::exp(row[i] - mx);
  return row[id] - mx - std::log(z);
}

double top2_margin(const float* row, int V) {
  double a = -1e30, b = -1e30;
  for (int i = 0; i < V; ++i) {
    const double v = row[i];
    if (v > a) b = a, a = v;
    else if (v > b) b = v;
  }
  return a - b;
}

}  // namespace harness
