// grpst_gpu_harness wsprobe: where the bf16 wgmma GEMM of decode batches (linear_bf16_ws.cu) loses
// its bandwidth at 64 rows. Each narrow projection, and gate_up by K slices, at 8 and 64 rows as
// it runs, then at 64 rows without its wgmma (GRPST_CUDA_BF16_WS_PROBE=1: the weight and
// activation stream and the end), without the activations' copies (2) and with neither (3; the
// probes' sums are wrong: timing only) and with the slices' sums by the last block, against
// cuBLASLt at 64 rows; then the
// narrow kernel by tokens (one warpgroup of 32-64 weight rows over the whole of K) against the
// kernel by weight rows and cuBLASLt at 16-64 rows.
#include <cstdlib>
#include <functional>
#include <string>

#include "device_fill.h"
#include "harness.h"
#include "tests.h"
#include "weights.h"

namespace harness {
namespace cu = grpst::cuda;

extern double g_copy_gbs;
double bench_graph_ms(const std::function<bool(int)>& fn, int launches, cudaStream_t s);
std::vector<DevWeight> bench_weight_copies(cu::WeightFormat f, int N, int K, size_t* bytes);

void bench_ws_probe() {
  cudaStream_t s;
  cudaStreamCreate(&s);
  cu::LtContext* lt = nullptr;
  if (!Checks::get().status("bench lt_create", cu::lt_create(&lt, 64u << 20))) return;
  struct Shape { const char* name; int N, K; };
  const Shape shapes[] = {{"qkv 6144x4096", 6144, 4096}, {"o 4096x4096", 4096, 4096},
                          {"down 4096x12288", 4096, 12288}, {"gate_up 24576x4096", 24576, 4096}};
  const DevSplitScratch split_scratch(size_t(64) * 24576 * 8, 151936);
  const cu::SplitScratch split = split_scratch.get();
  int sms = 132;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  for (const auto& sh : shapes) {
    Dev<uint16_t> x(size_t(64) * sh.K), y(size_t(64) * sh.N);
    fill_bf16(x.as<cu::bf16>(), x.n, 1.f, 0.f, 9);
    size_t wb = 0;
    const std::vector<DevWeight> ws = bench_weight_copies(cu::WeightFormat::bf16, sh.N, sh.K, &wb);
    const int copies = static_cast<int>(ws.size());
    if (!cu::linear_bf16_ws_supported(ws[0].w)) break;
    const auto row = [&](const char* group, const std::string& what, double ms) {
      const double gbs = wb / (ms * 1e-3) / 1e9;
      char note[96];
      std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw", ms * 1e3, 100.0 * gbs / g_copy_gbs);
      Bench::get().add(group, std::string(sh.name) + " " + what, gbs, "GB/s", note);
    };
    const auto lt_ms = [&](int M) {
      return bench_graph_ms([&](int i) {
        const cu::Weight& w = ws[i % copies].w;
        return cu::gemm_bf16(lt, x.as<cu::bf16>(), static_cast<const cu::bf16*>(w.data), y.p, false, false, M, w.N, w.K,
                             cu::Exec{s, false}).ok();
      }, 4 * copies, s);
    };
    // The GEMM as the switches set now, at M rows; its plan's description.
    const auto ws_ms = [&](int M, std::string* plan) {
      cu::LinearOut out;
      out.y = y.p;
      const double ms = bench_graph_ms([&](int i) {
        return cu::linear_bf16_ws(x.as<cu::bf16>(), ws[i % copies].w, out, M, split, sms, cu::Exec{s, true}).ok();
      }, 4 * copies, s);
      const cu::Bf16WsPlan p = cu::linear_bf16_ws_plan(ws[0].w, M, split, sms);
      *plan = std::to_string(p.rows) + "-row blocks, " + std::to_string(p.splits) + " slices" +
              (p.stream_k ? ", stream-K" : "") + (p.spread ? ", spread" : "");
      return ms;
    };
    std::string plan;
    // The probes (0-3) and the slices' sums by the last block (4), by K slices (no stream-K).
    setenv("GRPST_CUDA_BF16_WS_STREAMK", "0", 1);
    setenv("GRPST_CUDA_BF16_WS_KERNEL", "0", 1);
    row("wsprobe", "cuBLASLt M=64", lt_ms(64));
    for (int M : {8, 64})
      for (int v : {0, 1, 2, 3, 4}) {
        if (M == 8 && v) continue;
        setenv("GRPST_CUDA_BF16_WS_PROBE", std::to_string(v <= 3 ? v : 0).c_str(), 1);
        setenv("GRPST_CUDA_BF16_WS_SPREAD", v >= 4 ? "0" : "1", 1);
        const double ms = ws_ms(M, &plan);
        const char* names[] = {"as it runs", "no wgmma", "no x copies", "no wgmma, no x copies", "last-block sums"};
        row("wsprobe", "bf16_ws M=" + std::to_string(M) + " " + names[v] + " (" + plan + ")", ms);
      }
    unsetenv("GRPST_CUDA_BF16_WS_PROBE");
    unsetenv("GRPST_CUDA_BF16_WS_SPREAD");
    // The narrow kernel by tokens (3) against the kernel by weight rows (0) as planned and cuBLASLt.
    setenv("GRPST_CUDA_BF16_WS_STREAMK", "1", 1);
    for (int M : {16, 32, 48, 64}) {
      row("narrow", "cuBLASLt M=" + std::to_string(M), lt_ms(M));
      for (int kernel : {0, 3}) {
        setenv("GRPST_CUDA_BF16_WS_KERNEL", std::to_string(kernel).c_str(), 1);
        const double ms = ws_ms(M, &plan);
        row("narrow", "bf16_ws M=" + std::to_string(M) + " kernel " + std::to_string(kernel) + " (" + plan + ")", ms);
      }
    }
  }
  unsetenv("GRPST_CUDA_BF16_WS_KERNEL");
  unsetenv("GRPST_CUDA_BF16_WS_PROBE");
  unsetenv("GRPST_CUDA_BF16_WS_SPREAD");
  unsetenv("GRPST_CUDA_BF16_WS_STREAMK");
  cu::lt_destroy(lt);
  cudaStreamDestroy(s);
}

}  // namespace harness
