// Parity of the weight-streaming tensor-core GEMV in every format: its variants, the switches
// that keep its arithmetic (bit for bit), and the K split across a thread-block cluster.
#include "linear_checks.h"

namespace harness {
namespace linear_checks {
namespace {


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


}  // namespace

void test_linear_stream() {
  test_stream();
  test_stream_switches();
  test_stream_ksplit();
}

}  // namespace linear_checks
}  // namespace harness
