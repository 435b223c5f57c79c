// Parity: Qwen3-MoE's fp8 and int8_sq experts (moe_experts_w8a8: each projection's input rows
// quantized per grouped row, then the tile kernel or the tensor-core tiles) against their CPU twin,
// on routes and groups the device made (test_moe.cu checks those stages), at the tiny fixtures'
// shapes, Qwen3-30B-A3B's and one where an expert takes several tiles.
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

struct W8A8Shape {
  int T, H, Im, E, K;
  bool fp8;
  bool factors;  // int8_sq: per-expert SmoothQuant factors of gate_up's input
};

void test_moe_w8a8_layer(const W8A8Shape& s, bool wide) {
  const std::string name = std::string("moe ") + (s.fp8 ? "fp8" : "int8_sq") + (s.factors ? " factors" : "") +
                           " T=" + std::to_string(s.T) + " H=" + std::to_string(s.H) + " Im=" + std::to_string(s.Im) +
                           " E=" + std::to_string(s.E) + " K=" + std::to_string(s.K) + (wide ? " wide" : "");
  const int T = s.T, H = s.H, Im = s.Im, E = s.E, K = s.K, P = T * K;
  const int tile_rows = wide ? cu::kMoeWideRows : cu::kMoeTileRows;
  Rng r(313 + T * 5 + H + E * 7 + K + (s.fp8 ? 1 : 0));
  // Most tokens lean to one expert (offset 0.5 against a lifted router row): experts of several rows.
  auto x = rand_bf16(r, static_cast<size_t>(T) * H, 1.f, 0.5f);
  auto router = rand_bf16(r, static_cast<size_t>(E) * H, 0.1f);
  for (int k = 0; k < H; ++k) router[k] = f2bf(bf2f(router[k]) + 3.f * 0.1f * std::sqrt(0.6f * float(H)) / (0.5f * float(H)));
  // Weights over the whole 8-bit range (e4m3 without its NaN codes), and scales that vary by row and
  // input scales by expert, so a scale taken from the wrong row or expert shows; fp8's input scales
  // small enough that some of x saturates at 448.
  ref::W8A8Experts w;
  w.fp8 = s.fp8;
  const auto rand_bytes = [&](size_t n) {
    std::vector<uint8_t> b(n);
    for (auto& v : b) {
      v = static_cast<uint8_t>(r.below(256));
      if (s.fp8 && (v & 0x7f) == 0x7f) v ^= 1;  // 448 in place of NaN
      if (!s.fp8 && v == 0x80) v = 0x81;        // int8 weights in +-127
    }
    return b;
  };
  const float range = s.fp8 ? 448.f : 127.f;
  const auto rand_scales = [&](size_t n, float a) {
    ref::VF v(n);
    for (auto& e : v) e = a / range * (0.5f + r.uniform());
    return v;
  };
  w.gate_up = rand_bytes(static_cast<size_t>(E) * 2 * Im * H);
  w.down = rand_bytes(static_cast<size_t>(E) * H * Im);
  w.gate_up_scale = rand_scales(static_cast<size_t>(E) * 2 * Im, 1.f / std::sqrt(float(H)));
  w.down_scale = rand_scales(static_cast<size_t>(E) * H, 1.f / std::sqrt(float(Im)));
  if (s.fp8) {
    w.gate_up_input_scale = rand_scales(E, 2.5f);
    w.down_input_scale = rand_scales(E, 0.2f);
  } else if (s.factors) {
    w.pre_quant_scale.resize(static_cast<size_t>(E) * H);
    for (auto& v : w.pre_quant_scale) v = 0.5f + 1.5f * r.uniform();
  }
  const int max_tiles = cu::moe_max_tiles(P, E, tile_rows);

  Dev<uint16_t> dx(x), drouter(router);
  Dev<uint8_t> dgu(w.gate_up), ddown(w.down);
  Dev<float> dgus(w.gate_up_scale), ddns(w.down_scale), dgis(w.gate_up_input_scale), ddis(w.down_input_scale),
      dpqs(w.pre_quant_scale);
  cu::MoeW8A8Experts dw;
  dw.fp8 = s.fp8;
  dw.gate_up = dgu.p;
  dw.down = ddown.p;
  dw.gate_up_scale = dgus.p;
  dw.down_scale = ddns.p;
  dw.gate_up_input_scale = s.fp8 ? dgis.p : nullptr;
  dw.down_input_scale = s.fp8 ? ddis.p : nullptr;
  dw.pre_quant_scale = w.pre_quant_scale.empty() ? nullptr : dpqs.p;
  Dev<float> dlogits(static_cast<size_t>(T) * E), dweight(static_cast<size_t>(P)), dxs(static_cast<size_t>(P));
  Dev<int32_t> dchoice(static_cast<size_t>(P)), dslot(static_cast<size_t>(P)), drow_token(static_cast<size_t>(P)),
      dcount(1);
  Dev<cu::MoeTile> dtiles(static_cast<size_t>(max_tiles));
  Dev<uint16_t> dxq(static_cast<size_t>(P) * std::max(H, Im)), dact(static_cast<size_t>(P) * Im),
      dout(static_cast<size_t>(P) * H);
  dact.poison();
  dout.poison();
  const cu::Exec ex{};
  bool ok = Checks::get().status(name + " route", cu::moe_route(dx.as<cu::bf16>(), drouter.as<cu::bf16>(), T, H, E, K,
                                                                 true, dlogits.p, dchoice.p, dweight.p, ex));
  ok = ok && Checks::get().status(name + " group", cu::moe_group(dchoice.p, P, K, E, dslot.p, drow_token.p, dtiles.p,
                                                                 dcount.p, ex, tile_rows));
  ok = ok && Checks::get().status(name + " experts",
                                  cu::moe_experts_w8a8(dx.as<cu::bf16>(), dw, dchoice.p, dslot.p, dtiles.p, dcount.p,
                                                       max_tiles, T, K, H, Im, wide, dxq.as<cu::bf16>(), dxs.p,
                                                       dact.as<cu::bf16>(), dout.as<cu::bf16>(), ex));
  if (!ok) return;
  const ref::VI choice = dchoice.download(), slot = dslot.download(), row_token = drow_token.download();
  ref::VI row_expert(P);
  for (int p = 0; p < P; ++p) row_expert[slot[p]] = choice[p];
  const ref::VF got_act = bf16_to_f32(dact.download());
  ref::VF act, out;
  ref::moe_experts_w8a8(x, w, row_token, row_expert, P, H, Im, act, out, &got_act);
  // The quantized inputs are the twin's bits; only the fp32 summation order differs.
  Checks::get().compare(name + " gate_up + SwiGLU", got_act, act, 4e-3);
  Checks::get().compare(name + " down", bf16_to_f32(dout.download()), out, 4e-3);
}

}  // namespace

void test_moe_w8a8() {
  for (const bool fp8 : {true, false}) {
    for (const bool wide : {false, true}) {
      // tiny-moe's and tiny-moe-b's shapes (Im 48 / 32: K past the wide tiles' last 64-column step)
      test_moe_w8a8_layer({1, 64, 48, 8, 2, fp8, !fp8}, wide);
      test_moe_w8a8_layer({23, 64, 48, 8, 2, fp8, !fp8}, wide);
      test_moe_w8a8_layer({40, 96, 32, 6, 3, fp8, false}, wide);
      // experts past kMoeTileRows / kMoeWideRows rows; Qwen3-30B-A3B's layer at 1 and 64 / 128 tokens
      test_moe_w8a8_layer({300, 256, 64, 16, 4, fp8, !fp8}, wide);
      test_moe_w8a8_layer({1, 2048, 768, 128, 8, fp8, !fp8}, wide);
      test_moe_w8a8_layer({wide ? 128 : 64, 2048, 768, 128, 8, fp8, !fp8}, wide);
    }
  }
  // invalid inputs are refused with a Status, never a launch
  cu::MoeW8A8Experts bad;
  Checks::get().expect("moe_experts_w8a8 refuses missing weights",
                       !cu::moe_experts_w8a8(nullptr, bad, nullptr, nullptr, nullptr, nullptr, 1, 1, 2, 64, 48, false,
                                             nullptr, nullptr, nullptr, nullptr, {}).ok());
  const uint8_t byte = 0;
  const float scale = 1.f;
  bad.fp8 = true;
  bad.gate_up = bad.down = &byte;
  bad.gate_up_scale = bad.down_scale = &scale;
  Checks::get().expect("moe_experts_w8a8 refuses fp8 experts without input scales",
                       !cu::moe_experts_w8a8(nullptr, bad, nullptr, nullptr, nullptr, nullptr, 1, 1, 2, 64, 48, false,
                                             nullptr, nullptr, nullptr, nullptr, {}).ok());
  bad.gate_up_input_scale = bad.down_input_scale = &scale;
  Checks::get().expect("moe_experts_w8a8 refuses H % 8 != 0",
                       !cu::moe_experts_w8a8(nullptr, bad, nullptr, nullptr, nullptr, nullptr, 1, 1, 2, 60, 48, false,
                                             nullptr, nullptr, nullptr, nullptr, {}).ok());
  Checks::get().expect("moe_experts_w8a8 wide refuses Im % 16 != 0",
                       !cu::moe_experts_w8a8(nullptr, bad, nullptr, nullptr, nullptr, nullptr, 1, 1, 2, 64, 40, true,
                                             nullptr, nullptr, nullptr, nullptr, {}).ok());
}

}  // namespace harness
