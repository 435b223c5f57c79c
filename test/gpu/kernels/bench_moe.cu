// `grpst_gpu_harness moe`: one Qwen3-30B-A3B sparse layer (hidden 2,048, 128 experts of 768, top
// 8; random weights, near-uniform routing) at steps of 1 to 8,192 tokens, through the tile kernel
// (moe_experts, kMoeTileRows rows per tile) and the tensor-core tiles (moe_experts_wide), each
// timed as the forward runs it: routing, grouping, experts and combine; and int8_wo experts (half
// the weight bytes, a scale per row) through both (moe_experts_int8 up to 512 tokens,
// moe_experts_wide_int8); and int4_awq experts (a quarter of the bytes, groups of 128 with their
// scales and zeros, an input scale per expert) through both (moe_experts_int4 up to 512 tokens,
// moe_experts_wide_int4); and fp8 / int8_sq experts (moe_experts_w8a8, the int8_wo weights' bytes
// with their inputs quantized per grouped row) through both. Rows: microseconds per layer and the experts' TFLOP/s (2 x 3 x Im x H
// per (token, expert) pair).
#include <string>

#include "../../../native/src/kernels/cuda/moe.h"
#include "device_fill.h"
#include "harness.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

void bench_moe() {
  const int H = 2048, Im = 768, E = 128, K = 8;
  const int max_T = 8192, max_P = max_T * K;
  Dev<uint16_t> dx(size_t(max_T) * H), drouter(size_t(E) * H), dgu(size_t(E) * 2 * Im * H), ddown(size_t(E) * H * Im),
      dh(size_t(max_T) * H);
  fill_bf16(dx.as<cu::bf16>(), dx.n, 1.f, 0.f, 1);
  fill_bf16(drouter.as<cu::bf16>(), drouter.n, 0.1f, 0.f, 2);
  fill_bf16(dgu.as<cu::bf16>(), dgu.n, 0.02f, 0.f, 3);
  fill_bf16(ddown.as<cu::bf16>(), ddown.n, 0.03f, 0.f, 4);
  fill_bf16(dh.as<cu::bf16>(), dh.n, 1.f, 0.f, 5);
  Dev<int8_t> dgu_q(size_t(E) * 2 * Im * H), ddown_q(size_t(E) * H * Im);
  Dev<float> dgu_s(size_t(E) * 2 * Im), ddown_s(size_t(E) * H);
  fill_bytes(dgu_q.p, dgu_q.n, 6);
  fill_bytes(ddown_q.p, ddown_q.n, 7);
  fill_f32(dgu_s.p, dgu_s.n, 0.02f / 127.f, 0.02f / 127.f, 8);
  fill_f32(ddown_s.p, ddown_s.n, 0.03f / 127.f, 0.03f / 127.f, 9);
  const int G = 128;  // int4 group
  Dev<uint8_t> dgu_4(size_t(E) * 2 * Im * H / 2), ddown_4(size_t(E) * H * Im / 2), dgu_4z(size_t(E) * 2 * Im * H / G),
      ddown_4z(size_t(E) * H * Im / G);
  Dev<float> dgu_4s(dgu_4z.n), ddown_4s(ddown_4z.n), dpqs(size_t(E) * H);
  fill_bytes(dgu_4.p, dgu_4.n, 10);
  fill_bytes(ddown_4.p, ddown_4.n, 11);
  fill_bytes(dgu_4z.p, dgu_4z.n, 12);
  fill_bytes(ddown_4z.p, ddown_4z.n, 13);
  fill_f32(dgu_4s.p, dgu_4s.n, 0.02f / 7.5f, 0.02f / 7.5f, 14);
  fill_f32(ddown_4s.p, ddown_4s.n, 0.03f / 7.5f, 0.03f / 7.5f, 15);
  fill_f32(dpqs.p, dpqs.n, 0.5f, 1.f, 16);
  cu::MoeInt4Experts w4;
  w4.gate_up = dgu_4.p;
  w4.gate_up_scale = dgu_4s.p;
  w4.gate_up_zero = dgu_4z.p;
  w4.pre_quant_scale = dpqs.p;
  w4.gate_up_group = G;
  w4.down = ddown_4.p;
  w4.down_scale = ddown_4s.p;
  w4.down_zero = ddown_4z.p;
  w4.down_group = G;
  // fp8 / int8_sq experts: the int8_wo ones' bytes as e4m3 or int8 (random e4m3 bytes include NaN
  // codes: timing only), the same row scales, per-expert input scales (fp8), factors (int8_sq).
  Dev<float> dis(E);
  fill_f32(dis.p, dis.n, 0.01f, 0.01f, 17);
  Dev<uint16_t> dxq(size_t(max_P) * H);
  Dev<float> dxs(max_P);
  cu::MoeW8A8Experts w_fp8, w_sq;
  for (cu::MoeW8A8Experts* w : {&w_fp8, &w_sq}) {
    w->gate_up = reinterpret_cast<const uint8_t*>(dgu_q.p);
    w->down = reinterpret_cast<const uint8_t*>(ddown_q.p);
    w->gate_up_scale = dgu_s.p;
    w->down_scale = ddown_s.p;
  }
  w_fp8.fp8 = true;
  w_fp8.gate_up_input_scale = w_fp8.down_input_scale = dis.p;
  w_sq.pre_quant_scale = dpqs.p;
  Dev<float> dlogits(size_t(max_T) * E), dweight(max_P);
  Dev<int32_t> dchoice(max_P), dslot(max_P), drow_token(max_P), dcount(1);
  Dev<cu::MoeTile> dtiles(cu::moe_max_tiles(max_P, E));
  Dev<uint16_t> dact(size_t(max_P) * Im), dout(size_t(max_P) * H);
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  const cu::Exec ex{stream, true};
  // One sparse layer of T tokens as the forward runs it (route, group, experts, combine), timed;
  // experts(P, rows) launches the experts of the grouped tiles of `rows` rows. Returns microseconds
  // and adds the row `name`.
  const auto time_layer = [&](int T, int rows, const std::string& name, int reps, auto experts) {
    const int P = T * K;
    const auto layer = [&] {
      return cu::moe_route(dx.as<cu::bf16>(), drouter.as<cu::bf16>(), T, H, E, K, true, dlogits.p, dchoice.p, dweight.p,
                           ex).ok() &&
             cu::moe_group(dchoice.p, P, K, E, dslot.p, drow_token.p, dtiles.p, dcount.p, ex, rows).ok() &&
             experts(P, rows).ok() &&
             cu::moe_combine(dout.as<cu::bf16>(), dchoice.p, dweight.p, dslot.p, T, H, K, dh.as<cu::bf16>(), ex).ok();
    };
    const double ms = time_ms(layer, 2, reps, stream);
    const double tflops = 2.0 * P * 3.0 * Im * H / (ms * 1e-3) / 1e12;
    Bench::get().add("moe", "30B-A3B sparse layer T=" + std::to_string(T) + " " + name, ms * 1e3, "us",
                     std::to_string(tflops).substr(0, 6) + " TFLOP/s in the experts' products");
    return ms * 1e3;
  };
  for (int T : {1, 8, 16, 32, 64, 128, 512, 2048, 8192}) {
    const std::string at = "30B-A3B sparse layer T=" + std::to_string(T);
    double us[2] = {0, 0}, us8[2] = {0, 0};
    for (int wide = 0; wide < 2; ++wide) {
      const int rows = wide ? cu::kMoeWideRows : cu::kMoeTileRows;
      const auto bf16_experts = wide ? cu::moe_experts_wide : cu::moe_experts;
      us[wide] = time_layer(T, rows, wide ? "wide (tensor cores)" : "tiles", T >= 2048 && !wide ? 3 : 20,
                            [&](int P, int r) {
                              return bf16_experts(dx.as<cu::bf16>(), dgu.as<cu::bf16>(), ddown.as<cu::bf16>(),
                                                  drow_token.p, dtiles.p, dcount.p, cu::moe_max_tiles(P, E, r), H, Im,
                                                  dact.as<cu::bf16>(), dout.as<cu::bf16>(), ex);
                            });
      if (!wide && T > 512) continue;  // the int8 tile kernel's prefill rows: the bf16 ones say enough
      const auto int8_experts = wide ? cu::moe_experts_wide_int8 : cu::moe_experts_int8;
      us8[wide] = time_layer(T, rows, wide ? "int8_wo wide" : "int8_wo tiles", 20, [&](int P, int r) {
        return int8_experts(dx.as<cu::bf16>(), dgu_q.p, dgu_s.p, ddown_q.p, ddown_s.p, drow_token.p, dtiles.p,
                            dcount.p, cu::moe_max_tiles(P, E, r), H, Im, dact.as<cu::bf16>(), dout.as<cu::bf16>(), ex);
      });
    }
    Bench::get().add("moe", at + " tiles / wide", us[0] / us[1], "x");
    if (T <= 512) {
      const double us4 = time_layer(T, cu::kMoeTileRows, "int4_awq tiles", 20, [&](int P, int r) {
        return cu::moe_experts_int4(dx.as<cu::bf16>(), w4, drow_token.p, dtiles.p, dcount.p, cu::moe_max_tiles(P, E, r),
                                    H, Im, dact.as<cu::bf16>(), dout.as<cu::bf16>(), ex);
      });
      Bench::get().add("moe", at + " bf16 tiles / int4_awq tiles", us[0] / us4, "x");

      Bench::get().add("moe", at + " bf16 tiles / int8_wo tiles", us[0] / us8[0], "x");
      Bench::get().add("moe", at + " int8_wo tiles / wide", us8[0] / us8[1], "x");
    }
    Bench::get().add("moe", at + " bf16 wide / int8_wo wide", us[1] / us8[1], "x");
    const double us4w = time_layer(T, cu::kMoeWideRows, "int4_awq wide", 20, [&](int P, int r) {
      return cu::moe_experts_wide_int4(dx.as<cu::bf16>(), w4, drow_token.p, dtiles.p, dcount.p, cu::moe_max_tiles(P, E, r),
                                       H, Im, dact.as<cu::bf16>(), dout.as<cu::bf16>(), ex);
    });
    Bench::get().add("moe", at + " bf16 wide / int4_awq wide", us[1] / us4w, "x");
    // fp8 / int8_sq: each projection's input quantized per grouped row, then the 8-bit weights
    for (const bool fp8 : {true, false})
      for (int wide = T > 512 ? 1 : 0; wide < 2; ++wide) {
        const std::string fmt = fp8 ? "fp8" : "int8_sq";
        const int rows = wide ? cu::kMoeWideRows : cu::kMoeTileRows;
        const double u = time_layer(T, rows, fmt + (wide ? " wide" : " tiles"), 20, [&](int P, int r) {
          return cu::moe_experts_w8a8(dx.as<cu::bf16>(), fp8 ? w_fp8 : w_sq, dchoice.p, dslot.p, dtiles.p, dcount.p,
                                      cu::moe_max_tiles(P, E, r), T, K, H, Im, wide, dxq.as<cu::bf16>(), dxs.p,
                                      dact.as<cu::bf16>(), dout.as<cu::bf16>(), ex);
        });
        Bench::get().add("moe", at + " int8_wo " + (wide ? "wide" : "tiles") + " / " + fmt, us8[wide] / u, "x");
      }
  }
  Checks::get().expect("moe bench device state", cudaStreamSynchronize(stream) == cudaSuccess);
  cudaStreamDestroy(stream);
}

}  // namespace harness
