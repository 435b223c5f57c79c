// Parity: bf16 GEMV, the skinny kernel, the tiled weight-only GEMM, the streaming GEMV (every
// format), cuBLASLt bf16 / fp8 / int8 GEMMs with their helpers, the prologue, the weight repack +
// dequantization, each with the fused prologue / epilogue variants the forward uses.
#include <cstdlib>
#include <functional>
#include <optional>
#include "harness.h"
#include "reference.h"
#include "tests.h"
#include "weights.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

struct Case {
  int M, N, K;
  bool norm, act_scale;
  cu::Epilogue epi;
  bool f32_out;
};

std::string describe(const char* kernel, cu::WeightFormat f, const Case& c) {
  std::string s = std::string(kernel) + " " + cu::weight_format_name(f) + " M=" + std::to_string(c.M) +
                  " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K);
  if (c.norm) s += " +norm";
  if (c.act_scale) s += " +scale";
  if (c.epi == cu::Epilogue::residual_add) s += " +residual";
  if (c.epi == cu::Epilogue::swiglu) s += " +swiglu";
  if (c.f32_out) s += " f32";
  return s;
}

// Runs one linear through `run` (gemv / skinny / a GEMM path) and compares with the twin.
template <class Run>
void check_linear(const std::string& name, const ref::HostWeight& hw, const Case& c, double tol, Run&& run) {
  Rng r(static_cast<uint64_t>(c.M) * 7919 + c.N * 31 + c.K);
  const auto x = rand_bf16(r, static_cast<size_t>(c.M) * c.K, 2.f);
  std::vector<float> nw(c.K);
  for (auto& v : nw) v = 1.f + r.sym(0.2f);
  const auto as = rand_bf16(r, c.K, 0.5f, 1.f);
  const int out_n = c.epi == cu::Epilogue::swiglu ? c.N / 2 : c.N;
  const size_t out_count = static_cast<size_t>(c.M) * out_n;
  std::vector<float> y0(out_count);
  for (auto& v : y0) v = rbf(r.sym(1.f));
  Dev<uint16_t> dx(x), das(as);
  Dev<float> dnw(nw);
  Dev<uint8_t> dy(out_count * (c.f32_out ? 4 : 2));
  if (c.epi == cu::Epilogue::residual_add) {
    std::vector<uint16_t> b(out_count);
    for (size_t i = 0; i < out_count; ++i) b[i] = f2bf(y0[i]);
    cudaMemcpy(dy.p, b.data(), b.size() * 2, cudaMemcpyHostToDevice);
  } else {
    dy.poison();
  }
  cu::LinearIn in;
  in.x = dx.as<cu::bf16>();
  in.norm_w = c.norm ? dnw.p : nullptr;
  in.eps = 1e-6f;
  in.act_scale = c.act_scale ? das.as<cu::bf16>() : nullptr;
  cu::LinearOut out;
  out.y = dy.p;
  out.epi = c.epi;
  out.f32_out = c.f32_out;
  if (!Checks::get().status(name, run(in, out))) return;
  std::vector<float> want = y0;
  ref::linear(x, c.norm ? &nw : nullptr, 1e-6f, c.act_scale ? &as : nullptr, hw, c.epi, c.f32_out, c.M, want);
  std::vector<float> got(out_count);
  if (c.f32_out) {
    cudaMemcpy(got.data(), dy.p, out_count * 4, cudaMemcpyDeviceToHost);
  } else {
    std::vector<uint16_t> b(out_count);
    cudaMemcpy(b.data(), dy.p, out_count * 2, cudaMemcpyDeviceToHost);
    got = bf16_to_f32(b);
  }
  Checks::get().compare(name, got, want, tol);
}

// Switches (environment variables) set to a previous behaviour, and what the check calls it.
struct OldSetting {
  std::string label;
  std::vector<std::pair<const char*, const char*>> env;
};

// Runs `run` once under each old setting and once with the defaults, each from the same starting
// output (residual_add reads it); checks every old setting's bits equal the default's, and leaves
// the default's output for the caller's comparison with the twin.
Status same_bits_as_old(const std::string& name, size_t bytes, const cu::LinearOut& out,
                        const std::vector<OldSetting>& olds, const std::function<Status()>& run) {
  std::vector<uint8_t> start(bytes), now(bytes);
  std::vector<std::vector<uint8_t>> old(olds.size(), std::vector<uint8_t>(bytes));
  cudaMemcpy(start.data(), out.y, bytes, cudaMemcpyDeviceToHost);
  for (size_t i = 0; i < olds.size(); ++i) {
    // each variable back to what it was (the caller may have set one), or unset
    std::vector<std::pair<const char*, std::optional<std::string>>> before;
    for (const auto& [k, v] : olds[i].env) {
      const char* was = std::getenv(k);
      before.emplace_back(k, was ? std::optional<std::string>(was) : std::nullopt);
      setenv(k, v, 1);
    }
    const Status st = run();
    for (const auto& [k, was] : before) {
      if (was) setenv(k, was->c_str(), 1);
      else unsetenv(k);
    }
    if (!st.ok()) return st;
    cudaMemcpy(old[i].data(), out.y, bytes, cudaMemcpyDeviceToHost);
    cudaMemcpy(out.y, start.data(), bytes, cudaMemcpyHostToDevice);
  }
  const Status st = run();
  if (!st.ok()) return st;
  cudaMemcpy(now.data(), out.y, bytes, cudaMemcpyDeviceToHost);
  for (size_t i = 0; i < olds.size(); ++i) Checks::get().expect(name + ": the same bits as " + olds[i].label, old[i] == now);
  return st;
}

size_t out_bytes(const Case& c) {
  return static_cast<size_t>(c.M) * (c.epi == cu::Epilogue::swiglu ? c.N / 2 : c.N) * (c.f32_out ? 4 : 2);
}

void test_gemv() {
  Rng r(501);
  const std::vector<Case> cases = {
      {1, 1000, 4096, true, false, cu::Epilogue::store, false},
      {3, 998, 4096, false, false, cu::Epilogue::residual_add, false},
      {8, 512, 12288, false, true, cu::Epilogue::store, false},  // several K chunks
      {2, 2048, 4096, true, false, cu::Epilogue::swiglu, false},
      {5, 3001, 4096, true, false, cu::Epilogue::store, true},   // logits
      {1, 96, 160, true, true, cu::Epilogue::store, false},      // tiny shapes
      {4, 320, 64, true, false, cu::Epilogue::swiglu, false},
      // one row without a prologue: x read by each lane from global memory (no shared staging)
      {1, 998, 4096, false, false, cu::Epilogue::residual_add, false},  // o_proj-like, partial last block
      {1, 1024, 12288, false, false, cu::Epilogue::store, false},       // down_proj-like, long K
      {1, 2050, 4096, false, false, cu::Epilogue::swiglu, false},       // two rows per warp
      {1, 9001, 256, false, false, cu::Epilogue::store, false},         // wide: two rows per warp, odd N
      {1, 37, 168, false, false, cu::Epilogue::store, true},            // K below one pass of the warp
  };
  for (const auto& c : cases) {
    auto hw = random_host_weight(cu::WeightFormat::bf16, c.N, c.K, r);
    auto dw = to_device(hw);
    check_linear(describe("gemv", cu::WeightFormat::bf16, c), hw, c, 4e-3, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
      return cu::gemv_bf16(in, static_cast<const cu::bf16*>(dw.w.data), out, c.M, c.N, c.K, {});
    });
  }
}

void test_skinny() {
  Rng r(601);
  const cu::WeightFormat formats[] = {cu::WeightFormat::int8_wo, cu::WeightFormat::int4_awq, cu::WeightFormat::fp8,
                                      cu::WeightFormat::int8_sq};
  const std::vector<Case> cases = {
      {1, 1024, 4096, true, false, cu::Epilogue::store, false},
      {5, 512, 12288, false, true, cu::Epilogue::residual_add, false},
      {16, 768, 4096, true, false, cu::Epilogue::swiglu, false},
      {29, 512, 4096, false, false, cu::Epilogue::store, true},
      {64, 256, 4096, true, true, cu::Epilogue::residual_add, false},
      {3, 96, 160, true, false, cu::Epilogue::store, false},  // K not a multiple of 64, N not of 16
  };
  for (auto f : formats)
    for (const auto& c : cases) {
      const int group = c.K % 128 == 0 ? 128 : 32;
      auto hw = random_host_weight(f, c.N, c.K, r, group, c.M == 5 || c.M == 3);
      auto dw = to_device(hw);
      // Quantized activations can flip one rounding step: a little looser than bf16.
      const double tol = f == cu::WeightFormat::int8_sq || f == cu::WeightFormat::fp8 ? 1.2e-2 : 5e-3;
      // the default stages a chunk of every row at once; a row at a time must give the same bits
      const std::string name = describe("skinny", f, c);
      check_linear(name, hw, c, tol, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
        return same_bits_as_old(name, out_bytes(c), out,
                                {{"the staging a row at a time", {{"GRPST_CUDA_PROLOGUE_ALL_ROWS", "0"}}}},
                                [&] { return cu::linear_skinny(in, dw.w, out, c.M, {}); });
      });
    }
}

// The tiled weight-only GEMM (int8_wo, int4 groups of 16-128, with and without zeros) at 9-64
// tokens, its prologue as the forward runs it, every epilogue, N off its 64-row blocks, K off 64,
// the shape it chooses and each block shape with and without a K split
// (GRPST_CUDA_WO_TILED_CONFIG="rows,splits"); the split counters back at zero after every launch.
void test_wo_tiled() {
  Rng r(651);
  const int sms = 132;
  struct TiledCase { Case c; int group; bool zeros; bool chosen_only = false; };
  const std::vector<TiledCase> cases = {
      {{64, 1000, 4096, true, false, cu::Epilogue::store, false}, 128, false},
      {{40, 512, 12288, false, true, cu::Epilogue::residual_add, false}, 128, true},
      {{17, 768, 4096, true, false, cu::Epilogue::swiglu, false}, 64, false},
      {{9, 384, 2048, false, false, cu::Epilogue::store, true}, 32, true},
      {{32, 272, 1024, true, true, cu::Epilogue::residual_add, false}, 16, true},
      {{64, 96, 160, true, false, cu::Epilogue::store, false}, 32, false},  // K not a multiple of 64, N not of 16
      // 33-64 rows of a wide weight: whole waves take 128-row blocks with K split (on an H200)
      {{48, 6144, 4096, true, false, cu::Epilogue::swiglu, false}, 128, false, true},
  };
  const char* configs[] = {"", "64,1", "64,3", "128,2", "256,1", "256,4"};
  const DevSplitScratch scratch(size_t(64) * 6144 * 8, 6144);
  const cu::SplitScratch sc = scratch.get();
  for (auto f : {cu::WeightFormat::int8_wo, cu::WeightFormat::int4_awq})
    for (const auto& tc : cases) {
      const Case& c = tc.c;
      auto hw = random_host_weight(f, c.N, c.K, r, tc.group, tc.zeros);
      auto dw = to_device(hw);
      Dev<uint16_t> xn(size_t(c.M) * c.K);
      for (const char* cfg : configs) {
        if (tc.chosen_only && cfg[0]) continue;  // a large case: its CPU reference once per format
        if (cfg[0]) setenv("GRPST_CUDA_WO_TILED_CONFIG", cfg, 1);
        else unsetenv("GRPST_CUDA_WO_TILED_CONFIG");
        int rows = 0;
        const int splits = cu::linear_wo_tiled_splits(dw.w, c.M, sc, sms, &rows);
        std::string name = describe("wo_tiled", f, c) + " g" + std::to_string(tc.group) + (tc.zeros ? "+zeros" : "") +
                           " " + (cfg[0] ? cfg : "auto") + " (" + std::to_string(rows) + " rows x " +
                           std::to_string(splits) + " slices)";
        check_linear(name, hw, c, 5e-3, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
          const cu::bf16* x = in.x;
          if (in.norm_w || in.act_scale) {
            const cu::Status st = cu::linear_prologue(in, xn.as<cu::bf16>(), c.M, c.K, {});
            if (!st.ok()) return st;
            x = xn.as<cu::bf16>();
          }
          return cu::linear_wo_tiled(x, dw.w, out, c.M, sc, sms, {});
        });
        const auto left = scratch.counters.download();
        bool zero = true;
        for (int v : left) zero = zero && v == 0;
        Checks::get().expect(name + ": split counters back at zero", zero);
      }
    }
  unsetenv("GRPST_CUDA_WO_TILED_CONFIG");
  // Refusals: more than 64 rows, an int4 group it does not stage.
  auto hw = random_host_weight(cu::WeightFormat::int4_awq, 128, 480, r, 48, false);
  auto dw = to_device(hw);
  Dev<uint16_t> x(size_t(65) * 480), y(size_t(65) * 128);
  cu::LinearOut out;
  out.y = y.p;
  Checks::get().expect("wo_tiled refuses int4 groups of 48", !cu::linear_wo_tiled_supported(dw.w) &&
                       !cu::linear_wo_tiled(x.as<cu::bf16>(), dw.w, out, 8, sc, sms, {}).ok());
  auto hw8 = random_host_weight(cu::WeightFormat::int8_wo, 128, 480, r);
  Checks::get().expect("wo_tiled refuses 65 rows",
                       !cu::linear_wo_tiled(x.as<cu::bf16>(), to_device(hw8).w, out, 65, sc, sms, {}).ok());
}

// The weight-streaming GEMV in every format: one to eight tokens, K of many rounds per tile and
// of a few items, N off the 16-row tiles, int4 groups of 64 / 128 / 256 with and without zeros.
// The streaming GEMV's variants, chosen through its environment switches.
struct StreamVariant {
  const char* label;      // "" for the register kernel at the standard occupancy
  const char* occupancy;  // GRPST_CUDA_STREAM_OCCUPANCY
  const char* ring;       // GRPST_CUDA_STREAM_RING
};
const StreamVariant kStreamVariants[] = {{"", "2", "0"}, {" 3 blocks/SM", "3", "0"}, {" cp.async ring", "2", "1"}};
void set_stream_variant(const StreamVariant& v) {
  if (v.occupancy) setenv("GRPST_CUDA_STREAM_OCCUPANCY", v.occupancy, 1);
  else unsetenv("GRPST_CUDA_STREAM_OCCUPANCY");
  if (v.ring) setenv("GRPST_CUDA_STREAM_RING", v.ring, 1);
  else unsetenv("GRPST_CUDA_STREAM_RING");
}

// The streaming GEMV on one weight against its twin in every variant of its format (int4 and fp8
// also at three blocks per SM and with the cp.async ring where it fits), each under every
// GRPST_CUDA_STREAM_EXACT value in `exact` (nullptr: unset; "1" / "0": the exact / general
// kernel, checked to be the one that ran).
void check_stream_variants(const std::string& name, cu::WeightFormat f, const ref::HostWeight& hw, const DevWeight& dw,
                           const Case& c, std::initializer_list<const char*> exact) {
  if (!Checks::get().expect(name + " supported", cu::linear_stream_supported(dw.w, c.M))) return;
  // Quantized activations (fp8, int8_sq) can flip one rounding step; the rest differ from the
  // twin only in the order of fp32 sums and the final bf16 rounding.
  const double tol = f == cu::WeightFormat::int8_sq || f == cu::WeightFormat::fp8 ? 1.2e-2 : 4e-3;
  const bool variants = f == cu::WeightFormat::int4_awq || f == cu::WeightFormat::fp8;
  for (const StreamVariant& sv : kStreamVariants) {
    if (!variants && sv.label[0]) break;
    set_stream_variant(sv);
    for (const char* e : exact) {
      if (e) setenv("GRPST_CUDA_STREAM_EXACT", e, 1);
      const std::string label = name + sv.label + (!e ? "" : e[0] == '1' ? " exact" : " general");
      // residual_add as the forward's o_proj / down_proj take it: y loaded before the wait
      check_linear(label, hw, c, tol, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
        cu::LinearOut settled = out;
        settled.residual_settled = true;
        return cu::linear_stream(in, dw.w, settled, c.M, {});
      });
      if (e) Checks::get().expect(label + " took the kernel asked for", cu::linear_stream_last_exact() == (e[0] == '1'));
      unsetenv("GRPST_CUDA_STREAM_EXACT");
    }
  }
  set_stream_variant({});
}

void test_stream() {
  Rng r(901);
  const cu::WeightFormat formats[] = {cu::WeightFormat::bf16, cu::WeightFormat::int8_wo, cu::WeightFormat::int4_awq,
                                      cu::WeightFormat::fp8, cu::WeightFormat::int8_sq};
  const std::vector<Case> cases = {
      {1, 1000, 4096, true, false, cu::Epilogue::store, false},
      {3, 998, 4096, false, false, cu::Epilogue::residual_add, false},
      {2, 512, 12288, false, true, cu::Epilogue::residual_add, false},  // many rounds per tile
      {8, 768, 4096, true, false, cu::Epilogue::swiglu, false},
      {5, 3001, 1024, true, false, cu::Epilogue::store, true},           // logits
      {1, 96, 320, true, true, cu::Epilogue::store, false},              // K of five items
      {4, 200, 192, false, false, cu::Epilogue::swiglu, false},
  };
  for (auto f : formats)
    for (const auto& c : cases) {
      const int group = c.K % 128 == 0 ? 128 : 64;
      auto hw = random_host_weight(f, c.N, c.K, r, group, c.M == 3 || c.M == 4);
      hw.int4_fp32_groups = true;  // the twin of this kernel's int4 arithmetic
      auto dw = to_device(hw);
      check_stream_variants(describe("stream", f, c), f, hw, dw, c, {nullptr});
    }
  // The row statistics by the whole block (int8_sq's default: its amax) and by one warp per row,
  // forced either way: RMSNorm rows of 1, 3 and 8 tokens, K of 4,096 (one batch of loads) and
  // 12,288 (down_proj's amax), and a K that leaves threads without a chunk.
  const std::vector<Case> stats_cases = {
      {1, 512, 4096, true, false, cu::Epilogue::store, false},
      {3, 256, 12288, false, true, cu::Epilogue::residual_add, false},
      {8, 512, 4096, true, true, cu::Epilogue::swiglu, false},
      {2, 96, 320, true, false, cu::Epilogue::store, false},
  };
  for (auto f : {cu::WeightFormat::int8_sq, cu::WeightFormat::bf16, cu::WeightFormat::int4_awq})
    for (const auto& c : stats_cases)
      for (const char* block : {"1", "0"}) {
        auto hw = random_host_weight(f, c.N, c.K, r, 64, false);
        hw.int4_fp32_groups = true;
        auto dw = to_device(hw);
        setenv("GRPST_CUDA_STREAM_BLOCK_STATS", block, 1);
        check_stream_variants(describe("stream", f, c) + (block[0] == '1' ? " block stats" : " warp stats"), f, hw, dw, c,
                              {nullptr});
        unsetenv("GRPST_CUDA_STREAM_BLOCK_STATS");
      }
  // Whole tiles and rounds (every projection of the 8B shape): the exact kernel, whose item
  // offsets are compile-time constants (one token, or several), and the general one on the same
  // weights.
  const std::vector<Case> exact_cases = {
      {1, 1024, 4096, true, false, cu::Epilogue::store, false},          // qkv-like, 1 or 2 rounds
      {1, 512, 12288, false, false, cu::Epilogue::residual_add, false},  // down_proj-like, 3-12 rounds
      {1, 2048, 4096, true, true, cu::Epilogue::swiglu, false},
      {1, 640, 4096, true, false, cu::Epilogue::store, true},            // logits
      {3, 1024, 4096, true, false, cu::Epilogue::residual_add, false},   // several tokens
      {8, 2048, 4096, true, true, cu::Epilogue::swiglu, false},
  };
  for (auto f : formats)
    for (const auto& c : exact_cases)
      for (int group : {64, 128, 256}) {
        if (f != cu::WeightFormat::int4_awq && group != 128) continue;
        auto hw = random_host_weight(f, c.N, c.K, r, group, group != 128);
        hw.int4_fp32_groups = true;
        auto dw = to_device(hw);
        check_stream_variants(describe("stream", f, c) + (f == cu::WeightFormat::int4_awq ? " G=" + std::to_string(group) : ""),
                              f, hw, dw, c, {"1", "0"});
      }
  for (int group : {64, 256})
    for (bool zeros : {false, true}) {
      const Case c{2, 640, 4096, true, false, cu::Epilogue::store, false};
      auto hw = random_host_weight(cu::WeightFormat::int4_awq, c.N, c.K, r, group, zeros);
      hw.int4_fp32_groups = true;
      auto dw = to_device(hw);
      check_stream_variants(describe("stream", cu::WeightFormat::int4_awq, c) + " G=" + std::to_string(group) +
                                (zeros ? " zeros" : ""),
                            cu::WeightFormat::int4_awq, hw, dw, c, {nullptr});
    }
}

// The streaming GEMV's switches that keep its arithmetic, each against the default bit for bit
// (and the default against the twin): one or two weight rounds before the wait, fp8 / int8_sq
// staging with __fdiv_rn, the prologue a row at a time, one token's x loaded for each pass or
// once, x without a norm staged a chunk or three at a time, the epilogue's scales and the
// residual's y (LinearOut::residual_settled) loaded in the epilogue or before the wait. Shapes of
// 1, 2, 3 and 12 rounds per warp, 1 to 8 tokens, with and without a norm and an activation scale.
constexpr const char* kYInEpilogue = "GRPST_TEST_Y_IN_EPILOGUE";
void test_stream_switches() {
  Rng r(977);
  const std::vector<Case> cases = {
      {1, 512, 12288, false, false, cu::Epilogue::residual_add, false},  // down_proj-like
      {1, 8192, 1024, true, false, cu::Epilogue::store, false},          // 1-2 rounds a tile, 2 tiles a block
      {1, 1024, 4096, true, true, cu::Epilogue::swiglu, false},
      {1, 768, 4096, false, true, cu::Epilogue::residual_add, false},    // no norm: int8_sq's amax alone
      {5, 640, 4096, true, false, cu::Epilogue::store, true},
      {8, 768, 4096, true, false, cu::Epilogue::swiglu, false},
      {3, 512, 12288, false, false, cu::Epilogue::residual_add, false},
      {6, 256, 1024, true, true, cu::Epilogue::store, false},
  };
  for (auto f : {cu::WeightFormat::bf16, cu::WeightFormat::int8_wo, cu::WeightFormat::int4_awq, cu::WeightFormat::fp8,
                 cu::WeightFormat::int8_sq})
    for (const auto& c : cases) {
      auto hw = random_host_weight(f, c.N, c.K, r, 128, false);
      hw.int4_fp32_groups = true;
      auto dw = to_device(hw);
      const double tol = f == cu::WeightFormat::int8_sq || f == cu::WeightFormat::fp8 ? 1.2e-2 : 4e-3;
      // The defaults' row statistics, then (several tokens) the whole block's forced, whose rows
      // stream_rows_reduce takes at once unless the prologue goes a row at a time.
      for (const char* block_stats : {static_cast<const char*>(nullptr), "1"}) {
        if (block_stats && c.M == 1) continue;
        if (block_stats) setenv("GRPST_CUDA_STREAM_BLOCK_STATS", block_stats, 1);
        std::vector<OldSetting> olds = {{"the prologue a row at a time", {{"GRPST_CUDA_PROLOGUE_ALL_ROWS", "0"}}}};
        if (!block_stats)
          olds.insert(olds.begin(), {{"x staged after the row statistics (one token)", {{"GRPST_CUDA_STREAM_STAGE_ONCE", "0"}}},
                                     {"x staged a chunk at a time (one token)", {{"GRPST_CUDA_STREAM_ONE_ROW_BATCH", "0"}}},
                                     {"scales loaded in the epilogue", {{"GRPST_CUDA_STREAM_EPI_EARLY", "0"}}},
                                     {"two rounds before the wait", {{"GRPST_CUDA_STREAM_EARLY_ROUNDS", "2"}}},
                                     {"one round before the wait and __fdiv_rn",
                                      {{"GRPST_CUDA_STREAM_EARLY_ROUNDS", "1"}, {"GRPST_CUDA_STREAM_FDIV", "1"}}}});
        // (a test-only variable: residual_settled is the forward's to set, not a switch)
        if (c.epi == cu::Epilogue::residual_add) olds.push_back({"y loaded in the epilogue", {{kYInEpilogue, "1"}}});
        const std::string name = describe("stream", f, c) + " switches" + (block_stats ? ", block statistics" : "");
        check_linear(name, hw, c, tol, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
          return same_bits_as_old(name, out_bytes(c), out, olds, [&] {
            cu::LinearOut o = out;
            o.residual_settled = std::getenv(kYInEpilogue) == nullptr;
            return cu::linear_stream(in, dw.w, o, c.M, {});
          });
        });
        unsetenv("GRPST_CUDA_STREAM_BLOCK_STATS");
      }
    }
}

// The K split (GRPST_CUDA_STREAM_KSPLIT): each tile's K shared by 2 or 4 blocks of a cluster.
// Forced to at least 2 and 4 shares: against the twin, the shares asked for taken where they fit,
// int8_sq (integer sums) the same bits as unsplit. The default: two shares where the rows do not
// fit whole, or, fp8 / int8_sq, from 2 rows and rows x K = 20,480 (every case here).
void test_stream_ksplit() {
  Rng r(991);
  const std::vector<Case> cases = {
      {8, 512, 12288, false, false, cu::Epilogue::residual_add, false},  // bf16 / int8_wo: only in 4 shares
      {4, 1040, 12288, false, true, cu::Epilogue::store, false},          // bf16 / int8_wo: 2 shares by default
      {8, 768, 12288, true, false, cu::Epilogue::swiglu, false},
      {5, 768, 4096, true, false, cu::Epilogue::swiglu, false},           // fits whole
      {2, 200, 1024, true, true, cu::Epilogue::store, true},              // N off the tiles, fp32 out
      {1, 640, 8192, false, false, cu::Epilogue::residual_add, false},    // one row
  };
  for (auto f : {cu::WeightFormat::bf16, cu::WeightFormat::int8_wo, cu::WeightFormat::fp8, cu::WeightFormat::int8_sq})
    for (const auto& c : cases) {
      auto hw = random_host_weight(f, c.N, c.K, r, 128, false);
      auto dw = to_device(hw);
      const bool eight_bit = f == cu::WeightFormat::int8_sq || f == cu::WeightFormat::fp8;
      const double tol = eight_bit ? 1.2e-2 : 4e-3;
      setenv("GRPST_CUDA_STREAM_KSPLIT", "1", 1);
      const bool whole = cu::linear_stream_supported(dw.w, c.M);
      int took_two = 0;  // what forcing two shares took
      for (const char* ks : {"2", "4", "0"}) {
        setenv("GRPST_CUDA_STREAM_KSPLIT", ks, 1);
        const bool forced = ks[0] != '0';
        const std::string name = describe("stream K split", f, c) + (forced ? std::string(" forced ") + ks : " default");
        const bool two_fit = took_two == 2;
        const bool supported = cu::linear_stream_supported(dw.w, c.M);
        if (!forced && !whole && !two_fit) {
          Checks::get().expect(name + ": not supported where neither whole rows nor two shares fit", !supported);
          continue;
        }
        if (!Checks::get().expect(name + " supported", supported)) continue;
        const bool same_bits = forced && whole && f == cu::WeightFormat::int8_sq;
        check_linear(name, hw, c, tol, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
          cu::LinearOut settled = out;  // residual_add: each block of a cluster loads its share of y early
          settled.residual_settled = true;
          auto run = [&] { return cu::linear_stream(in, dw.w, settled, c.M, {}); };
          if (!same_bits) return run();
          return same_bits_as_old(name, out_bytes(c), out, {{"no K split", {{"GRPST_CUDA_STREAM_KSPLIT", "1"}}}}, run);
        });
        const int took = cu::linear_stream_last_ksplit();
        if (ks[0] == '2') took_two = took;
        const int want = forced ? (ks[0] == '2' && took == 4 ? 4 : std::atoi(ks))
                                : (!whole || (eight_bit && c.M >= 2 && c.M * c.K >= 20480)) ? 2 : 1;
        Checks::get().expect(name + " took " + std::to_string(want) + " shares (took " + std::to_string(took) + ")", took == want);
      }
    }
  unsetenv("GRPST_CUDA_STREAM_KSPLIT");
}

void test_gemm_paths(cu::LtContext* lt) {
  Rng r(701);
  // bf16 through cuBLASLt: store / accumulate / fp32 out; prologue materialized first.
  for (const auto& c : std::vector<Case>{{100, 1000, 512, true, false, cu::Epilogue::store, false},
                                         {300, 256, 1024, false, false, cu::Epilogue::residual_add, false},
                                         {77, 640, 256, true, false, cu::Epilogue::store, true},
                                         // decode batches, which bf16 models send to cuBLASLt from two rows
                                         {64, 1024, 4096, false, false, cu::Epilogue::residual_add, false},
                                         {1, 512, 12288, false, false, cu::Epilogue::residual_add, false}}) {
    auto hw = random_host_weight(cu::WeightFormat::bf16, c.N, c.K, r);
    auto dw = to_device(hw);
    Dev<uint16_t> xn(static_cast<size_t>(c.M) * c.K);
    check_linear(describe("gemm_bf16", cu::WeightFormat::bf16, c), hw, c, 5e-3, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
      const cu::bf16* x = in.x;
      if (in.norm_w || in.act_scale) {
        Status s = cu::linear_prologue(in, xn.as<cu::bf16>(), c.M, c.K, {});
        if (!s.ok()) return s;
        x = xn.as<cu::bf16>();
      }
      return cu::gemm_bf16(lt, x, static_cast<const cu::bf16*>(dw.w.data), out.y, out.f32_out,
                           out.epi == cu::Epilogue::residual_add, c.M, c.N, c.K, {});
    });
  }
  // bf16 into column slices of a wider y (ldy = N): how a quantized LM head is multiplied slice by
  // slice after dequantization (Forward::sliced_dequant_gemm); fp32 and bf16 out.
  for (const auto& c : std::vector<Case>{{64, 1000, 256, false, false, cu::Epilogue::store, true},
                                         {24, 640, 512, false, false, cu::Epilogue::store, false}}) {
    auto hw = random_host_weight(cu::WeightFormat::bf16, c.N, c.K, r);
    auto dw = to_device(hw);
    check_linear(describe("gemm_bf16 in column slices", cu::WeightFormat::bf16, c), hw, c, 5e-3,
                 [&](const cu::LinearIn& in, const cu::LinearOut& out) {
      const size_t elem = out.f32_out ? 4 : 2;
      for (int n0 = 0; n0 < c.N; n0 += 384) {
        const int n = std::min(384, c.N - n0);
        Status s = cu::gemm_bf16(lt, in.x, static_cast<const cu::bf16*>(dw.w.data) + static_cast<size_t>(n0) * c.K,
                                 static_cast<char*>(out.y) + n0 * elem, out.f32_out, false, c.M, n, c.K, {}, c.N);
        if (!s.ok()) return s;
      }
      return cu::ok_status();
    });
  }
  // fp8: static per-tensor activation scale, e4m3 GEMM, bf16 out (M not a multiple of 16 too).
  for (const auto& c : std::vector<Case>{{128, 1024, 512, true, true, cu::Epilogue::store, false},
                                         {100, 512, 1024, false, false, cu::Epilogue::residual_add, false},
                                         // small decode batches, when they take cuBLASLt (set_skinny_max_rows)
                                         {2, 1024, 4096, true, true, cu::Epilogue::store, false},
                                         {8, 512, 1024, false, false, cu::Epilogue::residual_add, false},
                                         // fp32 out: an fp8 LM head's logits
                                         {64, 1024, 512, true, false, cu::Epilogue::store, true}}) {
    auto hw = random_host_weight(cu::WeightFormat::fp8, c.N, c.K, r);
    auto dw = to_device(hw);
    Dev<uint8_t> xq(static_cast<size_t>(c.M) * c.K);
    check_linear(describe("gemm_fp8", cu::WeightFormat::fp8, c), hw, c, 1.2e-2, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
      Status s = cu::quantize_fp8(in, dw.w.x_scale, xq.p, c.M, c.K, {});
      if (!s.ok()) return s;
      return cu::gemm_fp8(lt, xq.p, static_cast<const uint8_t*>(dw.w.data), dw.w.x_scale, dw.w.w_scale, out.y,
                          out.epi == cu::Epilogue::residual_add, c.M, c.N, c.K, {}, out.f32_out);
    });
  }
  // int8_sq: per-token quantization, int8 GEMM, dequant epilogue (store / SwiGLU / residual).
  for (const auto& c : std::vector<Case>{{128, 1024, 512, true, true, cu::Epilogue::store, false},
                                         {96, 512, 1024, false, false, cu::Epilogue::swiglu, false},
                                         {100, 256, 512, false, true, cu::Epilogue::residual_add, false},
                                         {4, 1024, 4096, true, true, cu::Epilogue::store, false}}) {
    auto hw = random_host_weight(cu::WeightFormat::int8_sq, c.N, c.K, r);
    auto dw = to_device(hw);
    Dev<int8_t> xq(static_cast<size_t>(c.M) * c.K);
    Dev<float> xs(c.M);
    Dev<int32_t> acc(static_cast<size_t>(c.M) * c.N);
    check_linear(describe("gemm_int8", cu::WeightFormat::int8_sq, c), hw, c, 1.2e-2, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
      Status s = cu::quantize_int8_rows(in, xq.p, xs.p, c.M, c.K, {});
      if (!s.ok()) return s;
      s = cu::gemm_int8(lt, xq.p, static_cast<const int8_t*>(dw.w.data), acc.p, c.M, c.N, c.K, {});
      if (!s.ok()) return s;
      return cu::dequant_int32(acc.p, xs.p, dw.w.channel_scale, out, c.M, c.N, {});
    });
  }
}

void test_dequant_weight() {
  Rng r(801);
  // One partial block of k (320 = 5 of 8 k-blocks), and three blocks with a partial last (1088).
  for (auto shape : {std::pair<int, int>{100, 320}, std::pair<int, int>{40, 1088}})
  for (auto f : {cu::WeightFormat::int8_wo, cu::WeightFormat::int4_awq})
    for (bool zeros : {false, true}) {
      if (f == cu::WeightFormat::int8_wo && zeros) continue;
      const int N = shape.first, K = shape.second, G = 64;
      auto hw = random_host_weight(f, N, K, r, G, zeros);
      auto dw = to_device(hw);
      Dev<uint16_t> out(static_cast<size_t>(N) * K);
      out.poison();
      const std::string name = std::string("dequant_weight ") + cu::weight_format_name(f) + (zeros ? " zeros" : "") + " " +
                               std::to_string(N) + "x" + std::to_string(K);
      Checks::get().status(name, cu::dequant_weight(dw.w, out.as<cu::bf16>(), {}));
      std::vector<float> want(static_cast<size_t>(N) * K);
      for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) {
          float v = hw.weight(n, k);
          if (f == cu::WeightFormat::int8_wo) v = rbf(v * hw.channel_scale[n]);
          want[static_cast<size_t>(n) * K + k] = v;
        }
      Checks::get().compare(name, bf16_to_f32(out.download()), want, 0.0);
      // The same weight in slices of 32 rows (weight_rows), each into its rows of out.
      out.poison();
      bool ok = true;
      for (int n0 = 0; n0 < N && ok; n0 += 32) {
        cu::Weight slice;
        ok = Checks::get().status(name + " rows " + std::to_string(n0), cu::weight_rows(dw.w, n0, std::min(32, N - n0), &slice)) &&
             Checks::get().status(name + " slice " + std::to_string(n0),
                                  cu::dequant_weight(slice, out.as<cu::bf16>() + static_cast<size_t>(n0) * K, {}));
      }
      if (ok) Checks::get().compare(name + " in slices of 32 rows", bf16_to_f32(out.download()), want, 0.0);
    }
  cu::Weight bad;
  Checks::get().expect("weight_rows refuses a slice that does not start on a 16-row tile",
                       !cu::weight_rows(to_device(random_host_weight(cu::WeightFormat::int8_wo, 64, 128, r)).w, 8, 16, &bad).ok());
}

}  // namespace

void test_linear() {
  test_gemv();
  test_skinny();
  test_wo_tiled();
  test_stream();
  test_stream_switches();
  test_stream_ksplit();
  cu::LtContext* lt = nullptr;
  if (Checks::get().status("lt_create", cu::lt_create(&lt, 32u << 20))) {
    test_gemm_paths(lt);
    cu::lt_destroy(lt);
  }
  test_dequant_weight();
}

}  // namespace harness
