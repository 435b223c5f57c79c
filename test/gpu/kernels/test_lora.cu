// Parity: the LoRA update (kernels/cuda/lora.h) against its twin ref::lora_add, on a step whose
// rows mix two adapters and the base model, at the three kinds of site the forward pass has:
// QKV (three targets side by side, one left out by an adapter), gate_up (interleaved outputs,
// rank 64) and down_proj (a wide input); widths that are not multiples of the kernels' blocks.
// What no adapter touches must come back bit for bit.
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

void check_site(const char* name, const cu::LoraSite& site, const std::vector<const TestAdapter*>& rows, int ldy,
                bool zero_y, uint64_t seed) {
  Rng r(seed);
  const int M = static_cast<int>(rows.size());
  const auto x = rand_bf16(r, static_cast<size_t>(M) * site.in);
  const auto y0 = zero_y ? std::vector<uint16_t>(static_cast<size_t>(M) * ldy, 0) : rand_bf16(r, static_cast<size_t>(M) * ldy, 2.f);
  std::vector<const cu::LoraProj*> row_tables(M);
  std::vector<std::vector<const ref::LoraProjHost*>> proj(M);
  for (int m = 0; m < M; ++m) {
    row_tables[m] = rows[m] ? rows[m]->table.p : nullptr;
    for (int i = 0; i < site.count; ++i) proj[m].push_back(rows[m] ? &rows[m]->proj[site.first_target + i] : nullptr);
  }
  constexpr int kMaxRank = 80;  // wider than any rank here: the scratch's stride is max_rank, not the rank
  Dev<uint16_t> dx(x), dy(y0);
  Dev<const cu::LoraProj*> drows(row_tables);
  Dev<float> t(static_cast<size_t>(M) * 3 * kMaxRank);
  const cu::LoraStep step{drows.p, t.p, kMaxRank};
  const std::string tag = std::string("lora_add ") + name + (zero_y ? " (y = 0)" : "");
  Checks::get().status(tag + " launch", cu::lora_add(step, kLayer, site, dx.as<cu::bf16>(), dy.as<cu::bf16>(), ldy, M, {}));
  auto want = y0;
  ref::lora_add(x, site.in, proj, site.out, site.offset, site.stride, ldy, want);
  const auto got = dy.download();
  Checks::get().compare(tag, bf16_to_f32(got), bf16_to_f32(want), 4e-3);
  size_t moved = 0;  // elements the twin leaves as they were but the kernel changed
  for (size_t e = 0; e < got.size(); ++e)
    if (want[e] == y0[e] && got[e] != y0[e]) ++moved;
  Checks::get().expect(tag + ": base rows and unadapted columns untouched", moved == 0, std::to_string(moved) + " changed");
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
  // A step of one row (a decode graph's bucket) and one without any adapter.
  check_site("qkv one row", qkv, {&y}, q + 2 * kv, false, 84);
  check_site("down base rows only", down, {nullptr, nullptr}, H, false, 85);
}

}  // namespace harness
