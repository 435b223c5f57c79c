// Parity: bf16 GEMV, the skinny kernel, the tiled weight-only GEMM, the streaming GEMV (every
// format), cuBLASLt bf16 / fp8 / int8 GEMMs with their helpers, the prologue, the weight repack +
// dequantization, each with the fused prologue / epilogue variants the forward uses.
#include "linear_checks.h"
#include "tests.h"

namespace harness {
using namespace linear_checks;

namespace {

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

// The tiled weight-only GEMM (int8_wo, int4 groups of 16-128, with and without zeros) at 8-64
// tokens, its prologue as the forward runs it, every epilogue, N off its 64-row blocks, K off 64,
// the shape it chooses and each block shape with and without a K split
// (GRPST_CUDA_WO_TILED_CONFIG="rows,splits"), each on the wgmma kernel (where it runs) with its
// steps overlapped (int4 at 17-32 rows) and not, pipelined by steps and by half steps,
// warp-specialized (from 2 rows), as the defaults choose, and on the mma.sync one; the split
// counters back at zero after every launch.

// The fewest rows the warp-specialized kernel takes by default (linear_wo_tiled.cu's plan_for).
constexpr int kWsFromRows = 2;

void test_wo_tiled() {
  Rng r(651);
  const int sms = 132;
  struct TiledCase { Case c; int group; bool zeros; bool chosen_only = false; };
  const std::vector<TiledCase> cases = {
      {{64, 1000, 4096, true, false, cu::Epilogue::store, false}, 128, false},
      {{40, 512, 12288, false, true, cu::Epilogue::residual_add, false}, 128, true},
      {{17, 768, 4096, true, false, cu::Epilogue::swiglu, false}, 64, false},
      {{9, 384, 2048, false, false, cu::Epilogue::store, true}, 32, true},
      {{16, 640, 4096, true, false, cu::Epilogue::swiglu, false}, 128, true},  // n16: ws from 9 rows
      {{12, 256, 1536, false, true, cu::Epilogue::residual_add, false}, 64, false},
      // 8 rows: where the forward takes it for a projection the streaming GEMV cannot stage (int4
      // on the mma.sync kernel then stages its scales per step)
      {{8, 256, 12288, false, true, cu::Epilogue::residual_add, false}, 128, true},
      {{32, 272, 1024, true, true, cu::Epilogue::residual_add, false}, 16, true},
      {{64, 96, 160, true, false, cu::Epilogue::store, false}, 32, false},  // K not a multiple of 64, N not of 16
      // 33-64 rows of a wide weight: int4 by whole waves (128-row blocks with a K split on an H200),
      // int8_wo 64-row blocks in one wave
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
      // GRPST_CUDA_WO_WGMMA / _OVERLAP / _PIPE ('-': unset, the default rule): wgmma overlapped
      // where it applies, wgmma not, pipelined by steps, by half steps, the defaults, mma.sync
      // ("1/0/3k": warp-specialized under stream-K wherever it can run)
      for (const char* kernel : {"1/1/0", "1/0/0", "1/0/1", "1/0/2", "1/0/3", "1/0/3k", "1/1/-", "0/0/0"})
      for (const char* cfg : configs) {
        if (tc.chosen_only && cfg[0]) continue;  // a large case: its CPU reference once per format
        if (cfg[0]) setenv("GRPST_CUDA_WO_TILED_CONFIG", cfg, 1);
        else unsetenv("GRPST_CUDA_WO_TILED_CONFIG");
        setenv("GRPST_CUDA_WO_WGMMA", kernel[0] == '1' ? "1" : "0", 1);
        setenv("GRPST_CUDA_WO_WGMMA_OVERLAP", kernel[2] == '1' ? "1" : "0", 1);
        if (kernel[4] == '-') unsetenv("GRPST_CUDA_WO_WGMMA_PIPE");
        else setenv("GRPST_CUDA_WO_WGMMA_PIPE", std::string(1, kernel[4]).c_str(), 1);
        const bool force_stream_k = kernel[5] == 'k';
        if (force_stream_k && cfg[0]) continue;  // (stream-K has no slices to force)
        setenv("GRPST_CUDA_WO_WS_STREAMK", force_stream_k ? "2" : "0", 1);
        int rows = 0, pipe = 0, stream_k = 0;
        bool wgmma = false, overlap = false;
        const int splits = cu::linear_wo_tiled_splits(dw.w, c.M, sc, sms, &rows, &wgmma, &overlap, &pipe, &stream_k);
        const char* pipe_names[] = {"wgmma", "wgmma pipelined by steps", "wgmma pipelined by half steps",
                                    "wgmma, warp-specialized"};
        std::string name = describe("wo_tiled", f, c) + " g" + std::to_string(tc.group) + (tc.zeros ? "+zeros" : "") +
                           " " + (cfg[0] ? cfg : "auto") + " (" + std::to_string(rows) + " rows x " +
                           std::to_string(splits) + " slices, " +
                           (wgmma ? overlap ? "wgmma overlapped" : pipe_names[pipe] : "mma.sync") +
                           (stream_k ? ", stream-K over " + std::to_string(stream_k) + " blocks" : "") + ")";
        // On a GPU of compute capability 9.0 the wgmma kernel runs from 17 rows unless switched off
        // (not the 8-warp shape of 256 rows); pipelined where asked (int8_wo, int4 in groups of 64
        // or more), by default warp-specialized;
        // its steps overlapped for int4 up to 32 rows where it is not pipelined.
        // The warp-specialized kernel (256 rows) where asked, by default from kWsFromRows (n16
        // up to 16 rows, n32 at 17-32, n64 above).
        if (hopper_sm90()) {
          const bool int4 = f == cu::WeightFormat::int4_awq;
          const bool eligible = kernel[0] == '1' && (c.M > 8 || c.M >= kWsFromRows) && (!int4 || tc.group >= 64);
          const bool ws = eligible && (kernel[4] == '3' || (kernel[4] == '-' && c.M >= kWsFromRows));
          const bool wanted = ws || (kernel[0] == '1' && c.M > 16 && rows != 256);
          const bool can_pipe = wanted && (!int4 || tc.group >= 64);
          const int want_pipe = !can_pipe ? 0 : ws ? 3 : kernel[4] - '0';
          const bool want_overlap = wanted && want_pipe == 0 && kernel[2] == '1' && int4 && c.M <= 32;
          // stream-K where asked, on the warp-specialized kernel at up to 32 rows, with more
          // blocks (at least 8 steps each, one per SM) than 256-row tiles
          const int tiles = (c.N + 255) / 256;
          const int want_blocks = std::min<int>(sms, tiles * ((c.K + 63) / 64) / 8);
          const int want_stream_k = force_stream_k && want_pipe == 3 && c.M <= 32 && want_blocks > tiles ? want_blocks : 0;
          Checks::get().expect(name + ": the kernel asked for is taken", wgmma == wanted && pipe == want_pipe &&
                                                                             overlap == want_overlap && stream_k == want_stream_k);
        }
        check_linear(name, hw, c, 5e-3, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
          const cu::bf16* x = nullptr;
          const cu::Status st = tiled_input(in, c, xn, &x);
          return st.ok() ? cu::linear_wo_tiled(x, dw.w, out, c.M, sc, sms, {}) : st;
        });
        Checks::get().expect(name + ": split counters back at zero", counters_at_zero(scratch));
      }
    }
  unsetenv("GRPST_CUDA_WO_TILED_CONFIG");
  unsetenv("GRPST_CUDA_WO_WGMMA");
  unsetenv("GRPST_CUDA_WO_WGMMA_OVERLAP");
  unsetenv("GRPST_CUDA_WO_WGMMA_PIPE");
  unsetenv("GRPST_CUDA_WO_WS_STREAMK");
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
// Stream-K chosen by the default rule where the 256-row blocks leave SMs idle (6 tiles of 32 steps
// on 8 SMs: 8 blocks of 24 steps, the tiles cut in two or three pieces) at 9-32 rows, against the
// CPU twin at each x block (n16, n32) and epilogue, and the same bits from a second launch (the
// pieces summed in order, whichever arrives last); by K slices at 33-64 rows.
void test_wo_ws_stream_k() {
  if (!hopper_sm90()) return;  // (the warp-specialized kernel is sm_90a machine code)
  Rng r(977);
  const int sms = 8;
  const DevSplitScratch scratch(size_t(64) * 1536 * 8, 1536);
  const cu::SplitScratch sc = scratch.get();
  unsetenv("GRPST_CUDA_WO_WS_STREAMK");
  for (auto f : {cu::WeightFormat::int8_wo, cu::WeightFormat::int4_awq})
    for (const Case& c : {Case{12, 1536, 2048, true, false, cu::Epilogue::store, false},
                          Case{24, 1536, 2048, false, false, cu::Epilogue::swiglu, false},
                          Case{32, 1536, 2048, false, true, cu::Epilogue::residual_add, false},
                          Case{17, 1536, 2048, false, false, cu::Epilogue::store, true},
                          Case{64, 1536, 2048, false, false, cu::Epilogue::store, false}}) {
      auto hw = random_host_weight(f, c.N, c.K, r, 128, f == cu::WeightFormat::int4_awq);
      auto dw = to_device(hw);
      int stream_k = 0, pipe = 0;
      cu::linear_wo_tiled_splits(dw.w, c.M, sc, sms, nullptr, nullptr, nullptr, &pipe, &stream_k);
      const std::string name = describe("wo_ws stream-K", f, c);
      Checks::get().expect(name + (c.M <= 32 ? ": chosen over 8 blocks" : ": not chosen past 32 rows"),
                           pipe == 3 && stream_k == (c.M <= 32 ? sms : 0));
      Dev<uint16_t> xn(size_t(c.M) * c.K);
      check_linear(name, hw, c, 5e-3, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
        const cu::bf16* x = nullptr;
        if (const cu::Status st = tiled_input(in, c, xn, &x); !st.ok()) return st;
        if (out.epi != cu::Epilogue::residual_add) {  // a first launch, kept to compare bits with
          const size_t bytes = size_t(c.M) * (out.epi == cu::Epilogue::swiglu ? c.N / 2 : c.N) * (c.f32_out ? 4 : 2);
          Dev<uint8_t> first(bytes);
          cu::LinearOut o1 = out;
          o1.y = first.p;
          cu::Status st = cu::linear_wo_tiled(x, dw.w, o1, c.M, sc, sms, {});
          if (!st.ok()) return st;
          st = cu::linear_wo_tiled(x, dw.w, out, c.M, sc, sms, {});
          if (!st.ok()) return st;
          std::vector<uint8_t> a(bytes), b(bytes);
          cudaMemcpy(a.data(), first.p, bytes, cudaMemcpyDeviceToHost);
          cudaMemcpy(b.data(), out.y, bytes, cudaMemcpyDeviceToHost);
          Checks::get().expect(name + ": the same bits from a second launch", a == b);
          return st;
        }
        return cu::linear_wo_tiled(x, dw.w, out, c.M, sc, sms, {});
      });
      Checks::get().expect(name + ": tile counters back at zero", counters_at_zero(scratch));
      setenv("GRPST_CUDA_WO_WS_STREAMK", "0", 1);
      cu::linear_wo_tiled_splits(dw.w, c.M, sc, sms, nullptr, nullptr, nullptr, &pipe, &stream_k);
      Checks::get().expect(name + ": by slices when switched off", pipe == 3 && stream_k == 0);
      unsetenv("GRPST_CUDA_WO_WS_STREAMK");
    }
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
  test_wo_ws_stream_k();
  test_bf16_ws();
  test_linear_stream();
  cu::LtContext* lt = nullptr;
  if (Checks::get().status("lt_create", cu::lt_create(&lt, 32u << 20))) {
    test_gemm_paths(lt);
    cu::lt_destroy(lt);
  }
  test_dequant_weight();
}

}  // namespace harness
