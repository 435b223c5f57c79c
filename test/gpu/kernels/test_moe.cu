// Parity: the Qwen3-MoE kernels (routing, grouping, experts, combine) against their CPU twins, each
// stage fed the device's output of the stage before it (so a stage is checked on its own), at the
// tiny fixtures' shapes, Qwen3-30B-A3B's (128 experts, top 8) and steps of one decode token to
// prefill-sized ones where experts take several tiles; bf16 experts, int8_wo and int4_awq ones
// (fp8 / int8_sq ones: test_moe_w8a8.cu).
#include <algorithm>
#include <cmath>
#include <string>

#include "../../../native/src/kernels/cuda/moe.h"
#include "harness.h"
#include "reference_moe.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

struct MoeShape {
  int T, H, Im, E, K;
  bool norm_topk;
  // Most tokens choosing expert 0 (tiles of several rows, an expert past kMoeTileRows rows), and
  // two experts with the same router row (equal probabilities: the lower expert first).
  bool skewed;
  // int8_wo experts (int8 weights, one fp32 scale per row) in place of bf16 ones.
  bool int8 = false;
  // int4_awq experts in groups of this many weights (0: not int4), with per-expert input scales.
  int int4_group = 0;
  bool input_scales = false;
};

std::string shape_name(const MoeShape& s) {
  return "moe T=" + std::to_string(s.T) + " H=" + std::to_string(s.H) + " Im=" + std::to_string(s.Im) +
         " E=" + std::to_string(s.E) + " K=" + std::to_string(s.K) + (s.norm_topk ? " norm" : "") +
         (s.skewed ? " skewed" : "") + (s.int8 ? " int8_wo" : "") +
         (s.int4_group ? " int4_awq g" + std::to_string(s.int4_group) + (s.input_scales ? " input scales" : "") : "");
}

// wide: the grouping into kMoeWideRows-row tiles and the tensor-core experts (moe_experts_wide,
// the forward's path for steps of many tokens) in place of kMoeTileRows and moe_experts.
void test_moe_layer(const MoeShape& s, bool wide = false) {
  const std::string name = shape_name(s) + (wide ? " wide" : "");
  const int tile_rows = wide ? cu::kMoeWideRows : cu::kMoeTileRows;
  Rng r(91 + s.T * 7 + s.H + s.E * 3 + s.K);
  const int T = s.T, H = s.H, Im = s.Im, E = s.E, K = s.K, P = T * K;
  // Skewed: every token shares a component (offset 0.5) that expert 0's router row is aligned
  // with, lifting its logit by about three of the logits' standard deviations.
  auto x = rand_bf16(r, static_cast<size_t>(T) * H, 1.f, s.skewed ? 0.5f : 0.f);
  auto router = rand_bf16(r, static_cast<size_t>(E) * H, 0.1f);
  if (s.skewed) {
    const float lift = 3.f * 0.1f * std::sqrt(0.6f * float(H)) / (0.5f * float(H));
    for (int k = 0; k < H; ++k) {
      router[k] = f2bf(bf2f(router[k]) + lift);
      router[static_cast<size_t>(E - 1) * H + k] = router[static_cast<size_t>(1) * H + k];  // experts 1 and E-1 tie
    }
  }
  auto gate_up = rand_bf16(r, static_cast<size_t>(E) * 2 * Im * H, 1.f / std::sqrt(float(H)));
  auto down = rand_bf16(r, static_cast<size_t>(E) * H * Im, 1.f / std::sqrt(float(Im)));
  auto h = rand_bf16(r, static_cast<size_t>(T) * H, 2.f);
  // int8_wo experts: weights over the whole int8 range, scales giving the bf16 weights' spread
  // (each row's its own, so a scale applied to the wrong row shows).
  auto rand_i8 = [&r](size_t n) {
    std::vector<int8_t> q(n);
    for (auto& v : q) v = static_cast<int8_t>(r.below(255) - 127);
    return q;
  };
  auto rand_scales = [&r](size_t n, float a) {
    ref::VF sc(n);
    for (auto& v : sc) v = a / 127.f * (0.5f + r.uniform());
    return sc;
  };
  std::vector<int8_t> gate_up_q, down_q;
  ref::VF gate_up_s, down_s;
  if (s.int8) {
    gate_up_q = rand_i8(static_cast<size_t>(E) * 2 * Im * H);
    down_q = rand_i8(static_cast<size_t>(E) * H * Im);
    gate_up_s = rand_scales(static_cast<size_t>(E) * 2 * Im, 1.f / std::sqrt(float(H)));
    down_s = rand_scales(static_cast<size_t>(E) * H, 1.f / std::sqrt(float(Im)));
  }
  // int4_awq experts: every nibble and zero point, group scales giving the bf16 weights' spread (each
  // group its own, so a scale or zero of the wrong group shows), input scales around 1.
  auto rand_int4 = [&r](size_t rows, int K, int group, float a) {
    ref::Int4Matrix m;
    m.group = group;
    m.q.resize(rows * K / 2);
    for (auto& v : m.q) v = static_cast<uint8_t>(r.below(256));
    m.zero.resize(rows * K / group);
    for (auto& v : m.zero) v = static_cast<uint8_t>(r.below(16));
    m.scale.resize(rows * K / group);
    for (auto& v : m.scale) v = a / 7.5f * (0.5f + r.uniform());
    return m;
  };
  ref::Int4Matrix gate_up_4, down_4;
  ref::VF input_scales;
  if (s.int4_group) {
    gate_up_4 = rand_int4(static_cast<size_t>(E) * 2 * Im, H, s.int4_group, 1.f / std::sqrt(float(H)));
    down_4 = rand_int4(static_cast<size_t>(E) * H, Im, s.int4_group, 1.f / std::sqrt(float(Im)));
    if (s.input_scales) {
      input_scales.resize(static_cast<size_t>(E) * H);
      for (auto& v : input_scales) v = 0.5f + 1.5f * r.uniform();
    }
  }
  const int max_tiles = cu::moe_max_tiles(P, E, tile_rows);

  Dev<uint16_t> dx(x), drouter(router), dgu(gate_up), ddown(down), dh(h);
  Dev<int8_t> dgu_q(gate_up_q), ddown_q(down_q);
  Dev<float> dgu_s(gate_up_s), ddown_s(down_s);
  Dev<uint8_t> dgu_4(gate_up_4.q), dgu_4z(gate_up_4.zero), ddown_4(down_4.q), ddown_4z(down_4.zero);
  Dev<float> dgu_4s(gate_up_4.scale), ddown_4s(down_4.scale), dinput_scales(input_scales);
  cu::MoeInt4Experts w4;
  w4.gate_up = dgu_4.p;
  w4.gate_up_scale = dgu_4s.p;
  w4.gate_up_zero = dgu_4z.p;
  w4.pre_quant_scale = s.input_scales ? dinput_scales.p : nullptr;
  w4.gate_up_group = s.int4_group;
  w4.down = ddown_4.p;
  w4.down_scale = ddown_4s.p;
  w4.down_zero = ddown_4z.p;
  w4.down_group = s.int4_group;
  Dev<float> dlogits(static_cast<size_t>(T) * E), dweight(static_cast<size_t>(P));
  Dev<int32_t> dchoice(static_cast<size_t>(P)), dslot(static_cast<size_t>(P)), drow_token(static_cast<size_t>(P)),
      dcount(1);
  Dev<cu::MoeTile> dtiles(static_cast<size_t>(max_tiles));
  Dev<uint16_t> dact(static_cast<size_t>(P) * Im), dout(static_cast<size_t>(P) * H);
  dlogits.poison();
  dweight.poison();
  dact.poison();
  dout.poison();
  const cu::Exec ex{};
  bool ok = Checks::get().status(name + " route", cu::moe_route(dx.as<cu::bf16>(), drouter.as<cu::bf16>(), T, H, E, K,
                                                                 s.norm_topk, dlogits.p, dchoice.p, dweight.p, ex));
  ok = ok && Checks::get().status(name + " group", cu::moe_group(dchoice.p, P, K, E, dslot.p, drow_token.p, dtiles.p,
                                                                 dcount.p, ex, tile_rows));
  const auto experts = wide ? cu::moe_experts_wide : cu::moe_experts;
  const auto experts_int8 = wide ? cu::moe_experts_wide_int8 : cu::moe_experts_int8;
  ok = ok && Checks::get().status(
                  name + " experts",
                  s.int4_group ? (wide ? cu::moe_experts_wide_int4 : cu::moe_experts_int4)(
                                     dx.as<cu::bf16>(), w4, drow_token.p, dtiles.p, dcount.p, max_tiles, H, Im,
                                     dact.as<cu::bf16>(), dout.as<cu::bf16>(), ex)
                  : s.int8 ? experts_int8(dx.as<cu::bf16>(), dgu_q.p, dgu_s.p, ddown_q.p, ddown_s.p, drow_token.p,
                                        dtiles.p, dcount.p, max_tiles, H, Im, dact.as<cu::bf16>(), dout.as<cu::bf16>(),
                                        ex)
                         : experts(dx.as<cu::bf16>(), dgu.as<cu::bf16>(), ddown.as<cu::bf16>(), drow_token.p, dtiles.p,
                                   dcount.p, max_tiles, H, Im, dact.as<cu::bf16>(), dout.as<cu::bf16>(), ex));
  ok = ok && Checks::get().status(name + " combine", cu::moe_combine(dout.as<cu::bf16>(), dchoice.p, dweight.p, dslot.p,
                                                                     T, H, K, dh.as<cu::bf16>(), ex));
  if (!ok) return;

  // Routing: the logits within fp32 summation error; the choices and weights exactly as the CPU
  // backend takes them from the device's own logits.
  ref::VF logits;
  ref::moe_router_logits(x, router, T, H, E, logits);
  const ref::VF got_logits = dlogits.download();
  Checks::get().compare(name + " router logits", got_logits, logits, 1e-5);
  ref::VI choice;
  ref::VF weight;
  ref::moe_route_from_logits(got_logits, T, E, K, s.norm_topk, choice, weight);
  const ref::VI got_choice = dchoice.download();
  Checks::get().expect(name + " top-k choices", got_choice == choice);
  Checks::get().compare(name + " weights", dweight.download(), weight, 1e-6);

  // Grouping, from the device's choices: the same rows and tiles in the same order.
  ref::VI slot, row_token, tiles;
  ref::moe_group(got_choice, P, K, E, slot, row_token, tiles, tile_rows);
  const std::vector<cu::MoeTile> got_tiles = dtiles.download();
  const int count = dcount.download()[0];
  bool same_tiles = count == static_cast<int>(tiles.size() / 3) && count <= max_tiles;
  for (int i = 0; same_tiles && i < count; ++i)
    same_tiles = got_tiles[i].expert == tiles[3 * i] && got_tiles[i].row0 == tiles[3 * i + 1] &&
                 got_tiles[i].rows == tiles[3 * i + 2];
  Checks::get().expect(name + " grouping", dslot.download() == slot && drow_token.download() == row_token && same_tiles,
                       std::to_string(count) + " tiles, bound " + std::to_string(max_tiles));

  // Experts: gate_up + SwiGLU, and down from the device's own activations.
  ref::VI row_expert(P);
  for (int p = 0; p < P; ++p) row_expert[slot[p]] = got_choice[p];
  const ref::VF got_act = bf16_to_f32(dact.download());
  ref::VF act, out;
  if (s.int4_group)
    ref::moe_experts_int4(x, gate_up_4, s.input_scales ? &input_scales : nullptr, down_4, row_token, row_expert, P, H,
                          Im, act, out, &got_act, wide);
  else if (s.int8)
    ref::moe_experts_int8(x, gate_up_q, gate_up_s, down_q, down_s, row_token, row_expert, P, H, Im, act, out, &got_act);
  else
    ref::moe_experts(x, gate_up, down, row_token, row_expert, P, H, Im, act, out, &got_act);
  Checks::get().compare(name + " gate_up + SwiGLU", got_act, act, 4e-3);
  const std::vector<uint16_t> got_out = dout.download();
  Checks::get().compare(name + " down", bf16_to_f32(got_out), out, 4e-3);

  // Combine, from the device's expert outputs: bit for bit.
  ref::V16 want_h = h;
  ref::moe_combine(got_out, got_choice, dweight.download(), slot, T, H, K, want_h);
  Checks::get().compare(name + " combine + residual", bf16_to_f32(dh.download()), bf16_to_f32(want_h), 0.0);
}

// Calibration's per-expert statistics from the device's grouping (both tile sizes): the gate/up
// input through row_token (token rows), the down input by grouped row, into totals already holding
// values (as calibration accumulates step after step), with a bound of tiles past the listed ones.
void test_expert_stats(int T, int H, int Im, int E, int K, int tile_rows) {
  const std::string name = "expert stats T=" + std::to_string(T) + " H=" + std::to_string(H) + " Im=" + std::to_string(Im) +
                           " E=" + std::to_string(E) + " K=" + std::to_string(K) + " tiles of " + std::to_string(tile_rows);
  Rng r(17 + T + H + E + tile_rows);
  const int P = T * K;
  ref::VI choice(static_cast<size_t>(P));
  std::vector<int> pool(static_cast<size_t>(E));
  for (int t = 0; t < T; ++t) {  // K distinct experts a token, expert 0 the first of most (tiles past one)
    for (int e = 0; e < E; ++e) pool[static_cast<size_t>(e)] = e;
    for (int j = 0; j < K; ++j) {
      const int pick = j == 0 && r.uniform() < 0.7f ? 0 : j + r.below(E - j);
      std::swap(pool[static_cast<size_t>(j)], pool[static_cast<size_t>(pick)]);
      choice[static_cast<size_t>(t) * K + j] = pool[static_cast<size_t>(j)];
    }
  }
  auto x = rand_bf16(r, static_cast<size_t>(T) * H, 2.f), act = rand_bf16(r, static_cast<size_t>(P) * Im, 0.5f);
  const int max_tiles = cu::moe_max_tiles(P, E, tile_rows);
  Dev<int32_t> dchoice(choice), dslot(static_cast<size_t>(P)), drow_token(static_cast<size_t>(P)), dcount(1);
  Dev<cu::MoeTile> dtiles(static_cast<size_t>(max_tiles));
  Dev<uint16_t> dx(x), dact(act);
  ref::VF max_x(static_cast<size_t>(E) * H), max_a(static_cast<size_t>(E) * Im);
  std::vector<double> sum_x(max_x.size()), sum_a(max_a.size());
  std::vector<uint64_t> seen(static_cast<size_t>(E));
  for (size_t i = 0; i < max_x.size(); ++i) max_x[i] = i % 11 == 0 ? 7.f : 0.f, sum_x[i] = 0.5 * double(i % 5);
  for (size_t i = 0; i < max_a.size(); ++i) max_a[i] = i % 13 == 0 ? 3.f : 0.f, sum_a[i] = 0.25 * double(i % 3);
  for (int e = 0; e < E; ++e) seen[static_cast<size_t>(e)] = static_cast<uint64_t>(e % 2);
  Dev<float> dmax_x(max_x), dmax_a(max_a);
  Dev<double> dsum_x(sum_x), dsum_a(sum_a);
  Dev<unsigned long long> dseen(std::vector<unsigned long long>(seen.begin(), seen.end()));
  const cu::Exec ex{};
  bool ok = Checks::get().status(name + " group", cu::moe_group(dchoice.p, P, K, E, dslot.p, drow_token.p, dtiles.p,
                                                                 dcount.p, ex, tile_rows));
  ok = ok && Checks::get().status(name + " gate/up input", cu::expert_column_abs_stats(
                                      dx.as<cu::bf16>(), drow_token.p, dtiles.p, dcount.p, max_tiles, H, dmax_x.p,
                                      dsum_x.p, dseen.p, ex));
  ok = ok && Checks::get().status(name + " down input", cu::expert_column_abs_stats(dact.as<cu::bf16>(), nullptr,
                                                                                     dtiles.p, dcount.p, max_tiles, Im,
                                                                                     dmax_a.p, dsum_a.p, nullptr, ex));
  if (!ok) return;
  ref::VI slot, row_token, tiles;
  ref::moe_group(choice, P, K, E, slot, row_token, tiles, tile_rows);
  std::vector<uint64_t> no_count(static_cast<size_t>(E));
  ref::moe_expert_column_abs_stats(x, row_token, tiles, H, max_x, sum_x, seen);
  ref::moe_expert_column_abs_stats(act, {}, tiles, Im, max_a, sum_a, no_count);
  const auto as_f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  Checks::get().compare(name + " gate/up max", dmax_x.download(), max_x, 0.0);
  Checks::get().compare(name + " gate/up sum", as_f(dsum_x.download()), as_f(sum_x), 1e-6);
  Checks::get().compare(name + " down max", dmax_a.download(), max_a, 0.0);
  Checks::get().compare(name + " down sum", as_f(dsum_a.download()), as_f(sum_a), 1e-6);
  const std::vector<unsigned long long> got_seen = dseen.download();
  Checks::get().expect(name + " rows per expert", std::equal(got_seen.begin(), got_seen.end(), seen.begin()));
}

}  // namespace

void test_moe() {
  // tiny-moe (8 experts, top 2, renormalised), tiny-moe-b (6 experts, top 3, not renormalised)
  test_moe_layer({1, 64, 48, 8, 2, true, false});
  test_moe_layer({23, 64, 48, 8, 2, true, true});
  test_moe_layer({1, 96, 32, 6, 3, false, false});
  test_moe_layer({40, 96, 32, 6, 3, false, true});
  // Qwen3-30B-A3B's layer: one decode token, a decode batch, a prefill chunk
  test_moe_layer({1, 2048, 768, 128, 8, true, false});
  test_moe_layer({5, 2048, 768, 128, 8, true, true});
  test_moe_layer({64, 2048, 768, 128, 8, true, true});
  // more pairs than one warp's round (the grouping's 32 at a time) and than one tile per expert
  test_moe_layer({300, 256, 64, 16, 4, true, true});
  // The tensor-core tiles (steps of many tokens): the same shapes, an expert past kMoeWideRows
  // rows, K and N not multiples of the block's 64 (the tiny fixtures' H 96, Im 48 / 32), a
  // 30B-A3B prefill chunk.
  test_moe_layer({23, 64, 48, 8, 2, true, true}, true);
  test_moe_layer({40, 96, 32, 6, 3, false, true}, true);
  test_moe_layer({64, 2048, 768, 128, 8, true, true}, true);
  test_moe_layer({300, 256, 64, 16, 4, true, true}, true);
  test_moe_layer({128, 2048, 768, 128, 8, true, false}, true);
  test_moe_layer({1, 2048, 768, 128, 8, true, false}, true);
  // int8_wo experts, the tile kernel: tiny-moe's, tiny-moe-b's, Qwen3-30B-A3B's at 1, 64 and 300
  // tokens; and the wide tiles (int8 widened in shared memory): the tiny shapes (Im 48 / 32: K past
  // the last 64-column step), an expert past kMoeWideRows rows, a 30B-A3B prefill chunk
  test_moe_layer({1, 64, 48, 8, 2, true, false, true});
  test_moe_layer({23, 64, 48, 8, 2, true, true, true});
  test_moe_layer({40, 96, 32, 6, 3, false, true, true});
  test_moe_layer({1, 2048, 768, 128, 8, true, false, true});
  test_moe_layer({64, 2048, 768, 128, 8, true, true, true});
  test_moe_layer({300, 2048, 768, 128, 8, true, true, true});
  test_moe_layer({23, 64, 48, 8, 2, true, true, true}, true);
  test_moe_layer({40, 96, 32, 6, 3, false, true, true}, true);
  test_moe_layer({300, 256, 64, 16, 4, true, true, true}, true);
  test_moe_layer({128, 2048, 768, 128, 8, true, false, true}, true);
  test_moe_layer({1, 2048, 768, 128, 8, true, false, true}, true);
  // int4_awq experts through the tile kernel (decode steps): tiny-moe's groups of 16 with and without
  // input scales, tiny-moe-b's of 32 (Im 32: one group per down row), Qwen3-30B-A3B's of 128 at 1 and
  // 64 tokens (an expert past kMoeTileRows rows), and groups of 8
  test_moe_layer({1, 64, 48, 8, 2, true, false, false, 16, true});
  test_moe_layer({23, 64, 48, 8, 2, true, true, false, 16, true});
  test_moe_layer({23, 64, 48, 8, 2, true, true, false, 16, false});
  test_moe_layer({40, 96, 32, 6, 3, false, true, false, 32, true});
  test_moe_layer({1, 2048, 768, 128, 8, true, false, false, 128, true});
  test_moe_layer({64, 2048, 768, 128, 8, true, true, false, 128, true});
  test_moe_layer({40, 256, 64, 16, 4, true, true, false, 8, true});
  // and through the wide tiles (nibbles widened with their groups' scales and zeros and the input
  // scales): the tiny shapes (Im 48 / 32: K past the last 64-column step; groups of 16 / 32 / 8), an
  // expert past kMoeWideRows rows, Qwen3-30B-A3B's at 1 and 128 tokens in groups of 128
  test_moe_layer({23, 64, 48, 8, 2, true, true, false, 16, true}, true);
  test_moe_layer({40, 96, 32, 6, 3, false, true, false, 32, true}, true);
  test_moe_layer({300, 256, 64, 16, 4, true, true, false, 8, false}, true);
  test_moe_layer({128, 2048, 768, 128, 8, true, false, false, 128, true}, true);
  test_moe_layer({1, 2048, 768, 128, 8, true, false, false, 128, true}, true);
  // calibration's per-expert statistics: tiny-moe's shape, Qwen3-30B-A3B's decode tiles and a prefill chunk
  test_expert_stats(23, 64, 48, 8, 2, cu::kMoeTileRows);
  test_expert_stats(300, 2048, 768, 128, 8, cu::kMoeTileRows);
  test_expert_stats(300, 2048, 768, 128, 8, cu::kMoeWideRows);
  test_expert_stats(40, 96, 32, 6, 3, cu::kMoeWideRows);
  // invalid shapes are refused with a Status, never a launch
  Checks::get().expect("moe_experts_wide_int8 refuses H % 16 != 0",
                       !cu::moe_experts_wide_int8(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                                  1, 72, 48, nullptr, nullptr, {}).ok());
  Checks::get().expect("moe_route refuses top k > experts",
                       !cu::moe_route(nullptr, nullptr, 1, 64, 4, 5, true, nullptr, nullptr, nullptr, {}).ok());
  Checks::get().expect("moe_experts_wide refuses H % 8 != 0",
                       !cu::moe_experts_wide(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 60, 32, nullptr,
                                             nullptr, {}).ok());
  Checks::get().expect("moe_group refuses tiles of another size",
                       !cu::moe_group(nullptr, 8, 2, 8, nullptr, nullptr, nullptr, nullptr, {}, 16).ok());
  Checks::get().expect("moe_experts refuses H % 8 != 0",
                       !cu::moe_experts(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 60, 32, nullptr,
                                        nullptr, {}).ok());
  const float scale = 1.f;  // (not read: the call is refused before any launch)
  Checks::get().expect("moe_experts_int8 refuses H % 8 != 0",
                       !cu::moe_experts_int8(nullptr, nullptr, &scale, nullptr, &scale, nullptr, nullptr, nullptr, 1,
                                             60, 32, nullptr, nullptr, {}).ok());
  cu::MoeInt4Experts bad4;  // (pointers not read: the calls are refused before any launch)
  const uint8_t byte = 0;
  bad4.gate_up = bad4.down = bad4.gate_up_zero = bad4.down_zero = &byte;
  bad4.gate_up_scale = bad4.down_scale = &scale;
  bad4.gate_up_group = bad4.down_group = 12;
  Checks::get().expect("moe_experts_int4 refuses groups that are not a multiple of 8",
                       !cu::moe_experts_int4(nullptr, bad4, nullptr, nullptr, nullptr, 1, 48, 48, nullptr, nullptr, {}).ok());
  bad4.gate_up_group = bad4.down_group = 32;
  Checks::get().expect("moe_experts_int4 refuses groups that do not divide the row",
                       !cu::moe_experts_int4(nullptr, bad4, nullptr, nullptr, nullptr, 1, 64, 48, nullptr, nullptr, {}).ok());
  Checks::get().expect("moe_experts_wide_int4 refuses groups that do not divide the row",
                       !cu::moe_experts_wide_int4(nullptr, bad4, nullptr, nullptr, nullptr, 1, 64, 48, nullptr, nullptr, {}).ok());
  Checks::get().expect("moe_experts_wide_int4 refuses Im % 16 != 0",
                       !cu::moe_experts_wide_int4(nullptr, bad4, nullptr, nullptr, nullptr, 1, 64, 40, nullptr, nullptr, {}).ok());
  bad4.down_zero = nullptr;
  Checks::get().expect("moe_experts_int4 refuses missing zeros",
                       !cu::moe_experts_int4(nullptr, bad4, nullptr, nullptr, nullptr, 1, 64, 64, nullptr, nullptr, {}).ok());
  Checks::get().expect("moe_experts_int8 refuses missing scales",
                       !cu::moe_experts_int8(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1,
                                             64, 32, nullptr, nullptr, {}).ok());
}

}  // namespace harness
