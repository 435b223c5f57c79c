// grpst_gpu_harness rows: the linear kernels of 1-8 decode rows (a few sequences decoding together)
// at every Qwen3-8B projection: the streaming GEMV with its prologue taking all rows at once and a
// row at a time, against what the forward runs otherwise there (cuBLASLt for bf16, the skinny
// kernel for quantized weights, the tiled one for int4 / int8_wo; fp8 also cuBLASLt at 8 rows). The forward's row
// crossovers (cuda_forward.h) come from these and the whole-step rows of `bench`. The streaming GEMV
// also with K split across 2 blocks of a cluster (down_proj 4 too), and unsplit, forced.
// GRPST_BENCH_KERNEL_FORMATS limits the formats.
#include <cstdlib>
#include <functional>

#include "device_fill.h"
#include "harness.h"
#include "tests.h"
#include "weights.h"

namespace harness {
namespace cu = grpst::cuda;

extern double g_copy_gbs;
bool bench_format_selected(cu::WeightFormat f);
double bench_graph_ms(const std::function<bool(int)>& fn, int launches, cudaStream_t s);
std::vector<DevWeight> bench_weight_copies(cu::WeightFormat f, int N, int K, size_t* bytes);

void bench_stream_rows() {
  cudaStream_t s;
  cudaStreamCreate(&s);
  cu::LtContext* lt = nullptr;
  if (!Checks::get().status("bench lt_create", cu::lt_create(&lt, 64u << 20))) return;
  struct Shape { const char* name; int N, K; bool norm; };
  const Shape shapes[] = {{"qkv 6144x4096", 6144, 4096, true}, {"o 4096x4096", 4096, 4096, false},
                          {"gate_up 24576x4096", 24576, 4096, true}, {"down 4096x12288", 4096, 12288, false}};
  const cu::WeightFormat formats[] = {cu::WeightFormat::bf16, cu::WeightFormat::int8_wo, cu::WeightFormat::int4_awq,
                                      cu::WeightFormat::fp8, cu::WeightFormat::int8_sq};
  int sms = 132;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const DevSplitScratch split_scratch(size_t(64) * 24576 * 4, 24576);  // the tiled kernel's split-K scratch, as the forward sizes it
  const cu::SplitScratch split = split_scratch.get();
  for (const auto& sh : shapes) {
    Dev<uint16_t> x(size_t(8) * sh.K), y(size_t(8) * sh.N * 2), xn(size_t(8) * sh.K);
    Dev<float> norm_w(std::vector<float>(sh.K, 1.f));
    Dev<uint8_t> xq(size_t(8) * sh.K);
    fill_bf16(x.as<cu::bf16>(), x.n, 1.f, 0.f, 9);
    fill_e4m3(xq.p, xq.n, 1.f, 11);
    for (auto f : formats) {
      if (!bench_format_selected(f)) continue;
      size_t wb = 0;
      const std::vector<DevWeight> ws = bench_weight_copies(f, sh.N, sh.K, &wb);
      const int copies = static_cast<int>(ws.size());
      cu::LinearIn in;
      in.x = x.as<cu::bf16>();
      if (sh.norm) in.norm_w = norm_w.p, in.eps = 1e-6f;
      cu::LinearOut out;
      out.y = y.p;
      for (int M = 1; M <= 8; ++M) {
        const std::string at = std::string(sh.name) + " " + cu::weight_format_name(f) + " M=" + std::to_string(M) + " ";
        auto report = [&](const std::string& what, double ms) {
          const double gbs = wb / (ms * 1e-3) / 1e9;
          char note[120];
          std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw", ms * 1e3, 100.0 * gbs / g_copy_gbs);
          Bench::get().add("rows", at + what, ms * 1e3, "us", note);
        };
        const cu::Exec ex{s, true};
        auto stream_ms = [&] {
          return bench_graph_ms([&](int i) { return cu::linear_stream(in, ws[i % copies].w, out, M, ex).ok(); }, 4 * copies, s);
        };
        auto split_label = [] {
          const int ks = cu::linear_stream_last_ksplit();
          return ks > 1 ? ", K split in " + std::to_string(ks) : std::string();
        };
        if (cu::linear_stream_supported(ws[0].w, M))
          for (const char* all : {"1", "0"}) {
            if (M == 1 && all[0] == '0') continue;  // one row takes the same code either way
            setenv("GRPST_CUDA_PROLOGUE_ALL_ROWS", all, 1);
            const double ms = stream_ms();
            report(std::string("streaming GEMV, prologue ") + (all[0] == '1' ? "rows at once" : "a row at a time") + split_label(), ms);
            unsetenv("GRPST_CUDA_PROLOGUE_ALL_ROWS");
          }
        // K shared by 2 blocks of a cluster (down_proj also 4), forced, and no split (where the
        // default splits); fp8 / int8_sq at one row too
        const bool eight_bit = f == cu::WeightFormat::fp8 || f == cu::WeightFormat::int8_sq;
        if (f != cu::WeightFormat::int4_awq && (M >= 2 || eight_bit))
          for (const char* ks : {"1", "2", "4"}) {
            if (ks[0] == '4' && sh.K != 12288) continue;
            if (ks[0] == '1' && cu::linear_stream_last_ksplit() == 1) continue;
            setenv("GRPST_CUDA_STREAM_KSPLIT", ks, 1);
            if (cu::linear_stream_supported(ws[0].w, M)) {
              const double ms = stream_ms();
              if (ks[0] == '1') report("streaming GEMV, no K split (forced)", ms);
              else if (cu::linear_stream_last_ksplit() == std::atoi(ks)) report("streaming GEMV" + split_label() + " (forced)", ms);
            }
            unsetenv("GRPST_CUDA_STREAM_KSPLIT");
          }
        if (M == 1) continue;
        if (f == cu::WeightFormat::bf16) {
          // cuBLASLt after the prologue's own pass (the forward's path from two rows)
          report("cuBLASLt (after the norm pass)", bench_graph_ms([&](int i) {
                   const cu::bf16* xs = in.x;
                   if (in.norm_w) {
                     if (!cu::linear_prologue(in, xn.as<cu::bf16>(), M, sh.K, cu::Exec{s, false}).ok()) return false;
                     xs = xn.as<cu::bf16>();
                   }
                   return cu::gemm_bf16(lt, xs, static_cast<const cu::bf16*>(ws[i % copies].w.data), y.p, false, false, M,
                                        sh.N, sh.K, cu::Exec{s, false}).ok();
                 }, 4 * copies, s));
          continue;
        }
        report("skinny kernel", bench_graph_ms([&](int i) { return cu::linear_skinny(in, ws[i % copies].w, out, M, ex).ok(); },
                                               4 * copies, s));
        if ((f == cu::WeightFormat::int4_awq || f == cu::WeightFormat::int8_wo) && !in.norm_w)  // (the forward's norm pass first)
          report("tiled kernel", bench_graph_ms([&](int i) {
                   return cu::linear_wo_tiled(in.x, ws[i % copies].w, out, M, split, sms, ex).ok();
                 }, 4 * copies, s));
        if (f == cu::WeightFormat::fp8 && M == 8) {
          const cu::Weight& w0 = ws[0].w;
          report("cuBLASLt fp8 GEMM (x quantized first)", bench_graph_ms([&](int i) {
                   const cu::Weight& w = ws[i % copies].w;
                   return cu::gemm_fp8(lt, xq.p, static_cast<const uint8_t*>(w.data), w0.x_scale, w.w_scale, y.as<cu::bf16>(),
                                       false, M, w.N, w.K, cu::Exec{s, false}).ok();
                 }, 4 * copies, s));
        }
      }
    }
  }
  cu::lt_destroy(lt);
  cudaStreamDestroy(s);
}

}  // namespace harness
