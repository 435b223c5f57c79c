// Parity: the bf16 warp-specialized wgmma GEMM of batched decode (linear_bf16_ws.cu) against the
// CPU twin, at 2-64 tokens, each of its kernels (by weight rows with x blocks of 16, 32 and 64
// rows; by tokens in 128- and 256-row blocks, and the narrow one of 32, 48 or 64 rows as the
// SMs given ask), every epilogue, the prologue as
// the forward runs it (a pass before), N off its 256-row blocks and K off 64; by the default plan,
// by forced K slices (their sums added by the last block of a tile, and by every block its share
// of the rows: the same bits) and under stream-K; the same bits from a second launch where sums
// from several blocks are added (in slice / piece order, whichever arrives last), the counters
// back at zero; and its refusals.
#include "linear_checks.h"
#include "tests.h"

namespace harness {
namespace linear_checks {

namespace {

// One launch's output kept, then a second from the same starting output (residual_add reads it):
// the same bits.
cu::Status twice_same_bits(const std::string& name, const Case& c, const cu::LinearOut& out,
                           const std::function<cu::Status()>& run) {
  const size_t bytes = out_bytes(c);
  std::vector<uint8_t> start(bytes), first(bytes), second(bytes);
  cudaMemcpy(start.data(), out.y, bytes, cudaMemcpyDeviceToHost);
  cu::Status st = run();
  if (!st.ok()) return st;
  cudaMemcpy(first.data(), out.y, bytes, cudaMemcpyDeviceToHost);
  cudaMemcpy(out.y, start.data(), bytes, cudaMemcpyHostToDevice);
  st = run();
  if (!st.ok()) return st;
  cudaMemcpy(second.data(), out.y, bytes, cudaMemcpyDeviceToHost);
  Checks::get().expect(name + ": the same bits from a second launch", first == second);
  return st;
}

void test_cases(int sms) {
  Rng r(4099 + sms);
  const std::vector<Case> cases = {
      {64, 1000, 4096, true, false, cu::Epilogue::store, false},
      {40, 512, 12288, false, false, cu::Epilogue::residual_add, false},
      {17, 768, 4096, true, false, cu::Epilogue::swiglu, false},
      {9, 384, 2048, false, false, cu::Epilogue::store, true},
      {5, 640, 4096, true, false, cu::Epilogue::swiglu, false},
      {32, 272, 1024, true, true, cu::Epilogue::residual_add, false},
      {64, 96, 160, false, false, cu::Epilogue::store, false},  // K off 64, N off 16
      {2, 1536, 2048, false, false, cu::Epilogue::residual_add, false},
      {64, 2048, 1024, false, false, cu::Epilogue::swiglu, false},
  };
  const DevSplitScratch scratch(size_t(64) * 2048 * 8, 2 * 2048);  // (counters for 32-row blocks)
  const cu::SplitScratch sc = scratch.get();
  // kernel '-': the default (by weight rows), or that one (0-3); mode '-': the default plan; a
  // number: that many K slices; 's': stream-K wherever it can run (by weight rows only)
  for (const char* kernel : {"-", "0", "1", "2", "3"})
  for (const char* mode : {"-", "1", "3", "8", "s"})
    for (const Case& c : cases) {
      if (kernel[0] == '-') unsetenv("GRPST_CUDA_BF16_WS_KERNEL");
      else setenv("GRPST_CUDA_BF16_WS_KERNEL", kernel, 1);
      const int want_kernel = kernel[0] == '-' ? -1 : kernel[0] - '0';  // (-1: by weight rows or narrow)
      if (mode[0] == 's' && want_kernel > 0) continue;
      if (mode[0] == '-') unsetenv("GRPST_CUDA_BF16_WS_SPLITS");
      else if (mode[0] != 's') setenv("GRPST_CUDA_BF16_WS_SPLITS", mode, 1);
      setenv("GRPST_CUDA_BF16_WS_STREAMK", mode[0] == 's' ? "2" : mode[0] == '-' ? "1" : "0", 1);
      if (mode[0] == 's') unsetenv("GRPST_CUDA_BF16_WS_SPLITS");
      auto hw = random_host_weight(cu::WeightFormat::bf16, c.N, c.K, r);
      auto dw = to_device(hw);
      const cu::Bf16WsPlan p = cu::linear_bf16_ws_plan(dw.w, c.M, sc, sms);
      const char* kernel_names[] = {"by weight rows", "by tokens, 128 rows", "by tokens, 256 rows", "by tokens, narrow"};
      const std::string name = describe("bf16_ws", cu::WeightFormat::bf16, c) + " on " + std::to_string(sms) +
                               " SMs, " + (mode[0] == '-' ? "auto" : mode[0] == 's' ? "stream-K asked" : mode) + " (" +
                               kernel_names[p.kernel] + ", " + std::to_string(p.rows) + "-row blocks, " +
                               std::to_string(p.splits) + " slices" +
                               (p.stream_k ? ", stream-K over " + std::to_string(p.stream_k) + " blocks" : "") + ")";
      // What the plan must be where it is forced: the slices asked (at most one per 8 steps of K
      // and 8 in all, within the scratch), or stream-K with more blocks than 256-row tiles.
      Checks::get().expect(name + ": the kernel asked for",
                           want_kernel >= 0 ? p.kernel == want_kernel : p.kernel == 0 || p.kernel == 3);
      const int nkb = (c.K + 63) / 64, tiles = (c.N + 255) / 256;
      if (mode[0] >= '1' && mode[0] <= '9')
        Checks::get().expect(name + ": the slices asked", p.stream_k == 0 && p.splits == std::min(mode[0] - '0', nkb));
      if (mode[0] == 's' && p.kernel == 0) {  // (the narrow kernel, taken unasked, has no stream-K)
        const int blocks = std::min(sms, tiles * nkb / 8);
        Checks::get().expect(name + ": stream-K where it can run", p.stream_k == (blocks > tiles ? blocks : 0));
      }
      Dev<uint16_t> xn(size_t(c.M) * c.K);
      check_linear(name, hw, c, 5e-3, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
        const cu::bf16* x = nullptr;
        if (const cu::Status st = tiled_input(in, c, xn, &x); !st.ok()) return st;
        const auto run = [&] { return cu::linear_bf16_ws(x, dw.w, out, c.M, sc, sms, {}); };
        if (p.splits > 1 && p.stream_k == 0) {
          // The slices' sums added by every block of the tile: the same bits as by the last block
          // (the same order of additions), and twice the same.
          setenv("GRPST_CUDA_BF16_WS_SPREAD", "1", 1);
          const cu::Bf16WsPlan ps = cu::linear_bf16_ws_plan(dw.w, c.M, sc, sms);
          const int rows = ps.rows, per_sm = ps.kernel == 1 ? 2 : 1;
          Checks::get().expect(name + ": spread where the grid is one wave",
                               ps.spread == (((c.N + rows - 1) / rows) * ps.splits <= per_sm * sms));
          // same_bits_as_old leaves its last launch's output; residual_add reads the output, so
          // the starting output goes back before the second pair of launches.
          std::vector<uint8_t> start(out_bytes(c));
          cudaMemcpy(start.data(), out.y, start.size(), cudaMemcpyDeviceToHost);
          cu::Status st = same_bits_as_old(name + " spread", out_bytes(c), out,
                                           {{"the last block adding every slot", {{"GRPST_CUDA_BF16_WS_SPREAD", "0"}}}}, run);
          cudaMemcpy(out.y, start.data(), start.size(), cudaMemcpyHostToDevice);
          if (st.ok()) st = twice_same_bits(name + " spread", c, out, run);
          unsetenv("GRPST_CUDA_BF16_WS_SPREAD");
          return st;
        }
        return p.stream_k > 0 ? twice_same_bits(name, c, out, run) : run();
      });
      Checks::get().expect(name + ": counters back at zero", counters_at_zero(scratch));
    }
  unsetenv("GRPST_CUDA_BF16_WS_SPLITS");
  unsetenv("GRPST_CUDA_BF16_WS_STREAMK");
  unsetenv("GRPST_CUDA_BF16_WS_KERNEL");
}

// Which kernel the plan takes unasked with GRPST_CUDA_BF16_WS_NARROW=1: the narrow one where
// 48-64-row blocks make one wave (qkv of the 8B shape on 132 SMs: 128 blocks of 48 rows), not for
// o_proj / gate_up shapes; with it 2, 32-row blocks in one wave too (o_proj, not gate_up); with it
// 3 everywhere; with it 0 (the default), never.
void test_narrow_choice() {
  const DevSplitScratch scratch(size_t(64) * 2048 * 8, 2 * 2048);
  // the kernel and its rows with the switch at 1, then at 2; at 3 always the narrow one, rows3
  const struct { int N, K, sms, kernel, rows, kernel2, rows2, rows3; } cases[] = {
      {6144, 256, 132, 3, 48, 3, 48, 48}, {4096, 256, 132, 0, 256, 3, 32, 32}, {24576, 256, 132, 0, 256, 0, 256, 64},
      {1000, 256, 8, 0, 256, 0, 256, 64},  {384, 256, 8, 3, 48, 3, 48, 48}};
  Rng r(77);
  for (const auto& c : cases)
    for (int M : {8, 64})
      for (const char* narrow : {"1", "2", "3", "0", ""}) {
        if (narrow[0]) setenv("GRPST_CUDA_BF16_WS_NARROW", narrow, 1);
        else unsetenv("GRPST_CUDA_BF16_WS_NARROW");
        const auto dw = to_device(random_host_weight(cu::WeightFormat::bf16, c.N, c.K, r));
        const cu::Bf16WsPlan p = cu::linear_bf16_ws_plan(dw.w, M, scratch.get(), c.sms);
        const int mode = narrow[0] ? narrow[0] - '0' : 0;
        const int want = mode == 1 ? c.kernel : mode == 2 ? c.kernel2 : mode == 3 ? 3 : 0;
        const int want_rows = mode == 1 ? c.rows : mode == 2 ? c.rows2 : mode == 3 ? c.rows3 : 256;
        Checks::get().expect("bf16_ws plan N=" + std::to_string(c.N) + " M=" + std::to_string(M) + " on " +
                                 std::to_string(c.sms) + " SMs, narrow " + (narrow[0] ? narrow : "by default") + ": kernel " +
                                 std::to_string(p.kernel) + ", " + std::to_string(p.rows) + "-row blocks",
                             p.kernel == want && p.rows == want_rows);
      }
  unsetenv("GRPST_CUDA_BF16_WS_NARROW");
}

}  // namespace

void test_bf16_ws() {
  if (!hopper_sm90()) return;  // (sm_90a machine code)
  Rng r(31);
  Checks::get().expect("bf16_ws runs on this GPU",
                       cu::linear_bf16_ws_supported(to_device(random_host_weight(cu::WeightFormat::bf16, 64, 64, r)).w));
  test_cases(132);
  test_cases(8);  // few SMs: K slices and stream-K cut every tile
  test_narrow_choice();
  {
    // A plan made for more SMs than this GPU has (spread: 32 tiles x 8 slices, 256 blocks in
    // "one wave" of 1,000): the launch must not make a tile's blocks wait for each other when they
    // cannot all be resident (the last block adds the sums instead). A hang here is the failure.
    setenv("GRPST_CUDA_BF16_WS_SPLITS", "8", 1);
    setenv("GRPST_CUDA_BF16_WS_STREAMK", "0", 1);
    const Case c{16, 8192, 4096, false, false, cu::Epilogue::residual_add, false};
    const DevSplitScratch big(size_t(8192) * 16 * 8, 8192);
    auto hw = random_host_weight(cu::WeightFormat::bf16, c.N, c.K, r);
    auto dw = to_device(hw);
    const cu::Bf16WsPlan p = cu::linear_bf16_ws_plan(dw.w, c.M, big.get(), 1000);
    const std::string name = describe("bf16_ws", cu::WeightFormat::bf16, c) + " planned for 1000 SMs";
    Checks::get().expect(name + ": the plan spreads 8 slices", p.spread && p.splits == 8 && p.stream_k == 0);
    Dev<uint16_t> xn(size_t(c.M) * c.K);
    check_linear(name, hw, c, 5e-3, [&](const cu::LinearIn& in, const cu::LinearOut& out) {
      const cu::bf16* x = nullptr;
      if (const cu::Status st = tiled_input(in, c, xn, &x); !st.ok()) return st;
      return cu::linear_bf16_ws(x, dw.w, out, c.M, big.get(), 1000, {});
    });
    Checks::get().expect(name + ": counters back at zero", counters_at_zero(big));
    unsetenv("GRPST_CUDA_BF16_WS_SPLITS");
    unsetenv("GRPST_CUDA_BF16_WS_STREAMK");
  }
  // Refusals: more than 64 rows, K not a multiple of 8, another format; switched off.
  const DevSplitScratch scratch(size_t(64) * 256 * 8, 256);
  Dev<uint16_t> x(size_t(65) * 480), y(size_t(65) * 256);
  cu::LinearOut out;
  out.y = y.p;
  auto ok = to_device(random_host_weight(cu::WeightFormat::bf16, 256, 480, r));
  Checks::get().expect("bf16_ws refuses 65 rows",
                       !cu::linear_bf16_ws(x.as<cu::bf16>(), ok.w, out, 65, scratch.get(), 132, {}).ok());
  auto odd = to_device(random_host_weight(cu::WeightFormat::bf16, 256, 60, r));
  Checks::get().expect("bf16_ws refuses K = 60", !cu::linear_bf16_ws_supported(odd.w) &&
                                                     !cu::linear_bf16_ws(x.as<cu::bf16>(), odd.w, out, 8, scratch.get(), 132, {}).ok());
  auto i8 = to_device(random_host_weight(cu::WeightFormat::int8_wo, 256, 480, r));
  Checks::get().expect("bf16_ws refuses int8_wo", !cu::linear_bf16_ws_supported(i8.w));
  setenv("GRPST_CUDA_BF16_WS", "0", 1);
  Checks::get().expect("bf16_ws off when GRPST_CUDA_BF16_WS=0", !cu::linear_bf16_ws_supported(ok.w));
  unsetenv("GRPST_CUDA_BF16_WS");
}

}  // namespace linear_checks

void test_linear_bf16_ws() { linear_checks::test_bf16_ws(); }

}  // namespace harness
