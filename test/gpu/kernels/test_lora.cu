// Parity: the LoRA update (kernels/cuda/lora.h) against its twin ref::lora_add, on a step whose
// rows mix two adapters and the base model, at the kinds of site the forward pass has: QKV (three
// targets side by side, one left out by an adapter; its input normalised inside the update),
// gate_up (interleaved outputs, rank 64; and with its SwiGLU fused) and down_proj (a wide input);
// widths that are not multiples of the kernels' blocks. What no adapter touches must come back bit
// for bit.
#include <cuda_runtime.h>

#include <memory>

#include "../../../native/src/kernels/cuda/lora.h"
#include "harness.h"
#include "reference.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

constexpr int kLayers = 2, kLayer = 1;  // the update of layer 1: the table's layer stride counts

// One adapter: host projections (the twin's) and their device copies, and its device table.
struct TestAdapter {
  ref::LoraProjHost proj[cu::kLoraTargetCount];
  std::vector<std::unique_ptr<Dev<uint16_t>>> buffers;
  Dev<cu::LoraProj> table;

  void set(Rng& r, int target, int rank, int in, int out, float scale) {
    ref::LoraProjHost& p = proj[target];
    p.rank = rank;
    p.scale = scale;
    p.a = rand_bf16(r, static_cast<size_t>(rank) * in, 0.5f);
    p.b = rand_bf16(r, static_cast<size_t>(out) * rank, 0.5f);
  }
  // B transposed in blocks of 64 outputs, [ceil(out/64)][rank][64], the last block zero-padded.
  static std::vector<uint16_t> blocked(const ref::LoraProjHost& p, int out) {
    const int C = cu::kLoraBlockCols;
    std::vector<uint16_t> bt(static_cast<size_t>((out + C - 1) / C) * p.rank * C, 0);
    for (int n = 0; n < out; ++n)
      for (int r = 0; r < p.rank; ++r) bt[static_cast<size_t>(n / C) * p.rank * C + r * C + n % C] = p.b[static_cast<size_t>(n) * p.rank + r];
    return bt;
  }
  void upload(const int* outs /*[kLoraTargetCount]*/) {
    std::vector<cu::LoraProj> host(static_cast<size_t>(kLayers) * cu::kLoraTargetCount);
    for (int t = 0; t < cu::kLoraTargetCount; ++t) {
      const ref::LoraProjHost& p = proj[t];
      if (p.rank == 0) continue;
      buffers.push_back(std::make_unique<Dev<uint16_t>>(p.a));
      const auto* a = buffers.back()->as<__nv_bfloat16>();
      buffers.push_back(std::make_unique<Dev<uint16_t>>(blocked(p, outs[t])));
      host[static_cast<size_t>(kLayer) * cu::kLoraTargetCount + t] = cu::LoraProj{a, buffers.back()->as<__nv_bfloat16>(), p.rank, p.scale};
    }
    table.upload(host);
  }
};

struct Step {
  Dev<const cu::LoraProj*> rows;
  Dev<float> t;
  std::vector<std::vector<const ref::LoraProjHost*>> proj;  // [M][site.count]
  cu::LoraStep step;
};
constexpr int kMaxRank = 80;  // wider than any rank here: the scratch's stride is max_rank, not the rank

std::unique_ptr<Step> make_step(const std::vector<const TestAdapter*>& rows, int first_target, int count) {
  auto s = std::make_unique<Step>();
  const int M = static_cast<int>(rows.size());
  std::vector<const cu::LoraProj*> tables(M);
  s->proj.resize(M);
  for (int m = 0; m < M; ++m) {
    tables[m] = rows[m] ? rows[m]->table.p : nullptr;
    for (int i = 0; i < count; ++i) s->proj[m].push_back(rows[m] ? &rows[m]->proj[first_target + i] : nullptr);
  }
  s->rows.upload(tables);
  s->t.alloc(static_cast<size_t>(M) * 3 * kMaxRank);
  s->step = cu::LoraStep{s->rows.p, s->t.p, kMaxRank};
  return s;
}

// The projection's input: with norm weights the residual stream, and what the update multiplies
// its RMSNorm as rmsnorm() rounds it (the twin's input).
std::vector<uint16_t> update_input(const std::vector<uint16_t>& x, const std::vector<float>* norm_w, int M, int in) {
  if (!norm_w) return x;
  std::vector<uint16_t> y;
  ref::rmsnorm(x, nullptr, nullptr, *norm_w, M, in, 1e-6f, y);
  return y;
}

void check_site(const char* name, const cu::LoraSite& site, const std::vector<const TestAdapter*>& rows, int ldy,
                bool zero_y, uint64_t seed, bool normed = false) {
  Rng r(seed);
  const int M = static_cast<int>(rows.size());
  const auto x = rand_bf16(r, static_cast<size_t>(M) * site.in, normed ? 4.f : 1.f);
  std::vector<float> norm_w(site.in);
  for (auto& v : norm_w) v = 1.f + r.sym(0.3f);
  const auto y0 = zero_y ? std::vector<uint16_t>(static_cast<size_t>(M) * ldy, 0) : rand_bf16(r, static_cast<size_t>(M) * ldy, 2.f);
  const auto s = make_step(rows, site.first_target, site.count);
  Dev<uint16_t> dx(x), dy(y0);
  Dev<float> dw(norm_w);
  const std::string tag = std::string("lora_add ") + name + (zero_y ? " (y = 0)" : "") + (normed ? " (normed input)" : "");
  Checks::get().status(tag + " launch", cu::lora_add(s->step, kLayer, site, dx.as<cu::bf16>(), normed ? dw.p : nullptr, 1e-6f,
                                                     dy.as<cu::bf16>(), ldy, M, {}));
  auto want = y0;
  ref::lora_add(update_input(x, normed ? &norm_w : nullptr, M, site.in), site.in, s->proj, site.out, site.offset, site.stride, ldy, want);
  const auto got = dy.download();
  Checks::get().compare(tag, bf16_to_f32(got), bf16_to_f32(want), 4e-3);
  size_t moved = 0;  // elements the twin leaves as they were but the kernel changed
  for (size_t e = 0; e < got.size(); ++e)
    if (want[e] == y0[e] && got[e] != y0[e]) ++moved;
  Checks::get().expect(tag + ": base rows and unadapted columns untouched", moved == 0, std::to_string(moved) + " changed");
}

// gate_up's update with its SwiGLU: against the twin's update, then ref::swiglu, for every row.
void check_swiglu(const std::vector<const TestAdapter*>& rows, int in, int I, uint64_t seed) {
  Rng r(seed);
  const int M = static_cast<int>(rows.size());
  const auto x = rand_bf16(r, static_cast<size_t>(M) * in, 4.f);
  const auto gate_up = rand_bf16(r, static_cast<size_t>(M) * 2 * I, 3.f);
  std::vector<float> norm_w(in);
  for (auto& v : norm_w) v = 1.f + r.sym(0.3f);
  const auto s = make_step(rows, cu::kLoraGate, 2);
  Dev<uint16_t> dx(x), dgu(gate_up), dout(static_cast<size_t>(M) * I);
  Dev<float> dw(norm_w);
  dout.poison();
  Checks::get().status("lora_add_swiglu launch", cu::lora_add_swiglu(s->step, kLayer, dx.as<cu::bf16>(), dw.p, 1e-6f, in,
                                                                     dgu.as<cu::bf16>(), dout.as<cu::bf16>(), I, M, {}));
  auto updated = gate_up;
  const int out[2] = {I, I}, offset[2] = {0, 1};
  ref::lora_add(update_input(x, &norm_w, M, in), in, s->proj, out, offset, 2, 2 * I, updated);
  std::vector<uint16_t> want;
  ref::swiglu(updated, M, I, want);
  Checks::get().compare("lora_add_swiglu", bf16_to_f32(dout.download()), bf16_to_f32(want), 4e-3);
  std::vector<uint16_t> plain;  // the base rows: exactly the SwiGLU kernel's bits
  ref::swiglu(gate_up, M, I, plain);
  const auto got = dout.download();
  size_t differ = 0;
  for (int m = 0; m < M; ++m)
    if (!rows[m])
      for (int j = 0; j < I; ++j) differ += got[static_cast<size_t>(m) * I + j] != plain[static_cast<size_t>(m) * I + j];
  Checks::get().expect("lora_add_swiglu: base rows are the SwiGLU alone", differ == 0, std::to_string(differ) + " differ");
}

}  // namespace

void test_lora() {
  Rng r(71);
  // QKV of a small model: 264 inputs, q 96, k and v 40 outputs (the last of 64 partly filled),
  // two spare columns past v; gate_up 2 x 300 interleaved; down_proj 1000 -> 264.
  const int H = 264, I = 1000, q = 96, kv = 40;
  const int outs[cu::kLoraTargetCount] = {q, kv, kv, H, 300, 300, H};
  TestAdapter x, y;
  x.set(r, cu::kLoraQ, 8, H, q, 2.f);
  x.set(r, cu::kLoraV, 5, H, kv, 0.5f);  // (k left out)
  x.set(r, cu::kLoraGate, 8, H, 300, 1.f);
  x.set(r, cu::kLoraUp, 8, H, 300, 1.f);
  x.set(r, cu::kLoraDown, 4, I, H, 0.25f);
  y.set(r, cu::kLoraQ, 3, H, q, 1.f);
  y.set(r, cu::kLoraK, 16, H, kv, 0.125f);
  y.set(r, cu::kLoraV, 16, H, kv, 1.f);
  y.set(r, cu::kLoraGate, 64, H, 300, 0.5f);
  y.set(r, cu::kLoraUp, 64, H, 300, 0.5f);  // (down left out)
  x.upload(outs);
  y.upload(outs);
  const std::vector<const TestAdapter*> rows = {&x, nullptr, &y, &x, &y, nullptr, &x, &x, &y};
  const cu::LoraSite qkv{cu::kLoraQ, 3, H, {q, kv, kv}, {0, q, q + kv}, 1};
  const cu::LoraSite gate_up{cu::kLoraGate, 2, H, {300, 300, 0}, {0, 1, 0}, 2};
  const cu::LoraSite down{cu::kLoraDown, 1, I, {H, 0, 0}, {0, 0, 0}, 1};
  for (bool zero : {true, false}) {
    check_site("qkv", qkv, rows, q + 2 * kv + 2, zero, 81);
    check_site("gate_up", gate_up, rows, 600, zero, 82);
    check_site("down", down, rows, H, zero, 83);
  }
  check_site("qkv", qkv, rows, q + 2 * kv + 2, false, 86, true);
  check_swiglu(rows, H, 300, 87);
  // A step of one row (a decode graph's bucket) and one without any adapter.
  check_site("qkv one row", qkv, {&y}, q + 2 * kv, false, 84);
  check_site("down base rows only", down, {nullptr, nullptr}, H, false, 85);
}

}  // namespace harness
