// Kernel benches: the two ceilings (device copy bandwidth, bf16 GEMM rate), every Qwen3-8B
// linear shape at batch 1 in every format against the copy bandwidth (and cuBLASLt bf16 at M=1
// as the bar to beat), decode attention at long contexts, and prefill attention's TFLOP/s.
#include <cmath>
#include <cstdlib>
#include <functional>

#include "device_fill.h"
#include "harness.h"
#include "tests.h"
#include "weights.h"

namespace harness {
namespace cu = grpst::cuda;

double g_copy_gbs = 0;  // measured in bench_ceilings, used for rooflines

namespace {

__global__ void read_kernel(const uint4* __restrict__ p, size_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) *sink = acc;
}

// Times `launches` enqueued by fn captured as one graph; returns ms per launch.
template <class F>
double graph_ms(F&& fn, int launches, cudaStream_t s) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  bool ok = true;
  for (int i = 0; i < launches && ok; ++i) ok = fn(i);
  cudaStreamEndCapture(s, &g);
  if (!ok || cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) {
    cudaGraphDestroy(g);
    Checks::get().expect("bench graph capture", false);
    return -1;
  }
  const double ms = time_ms([&] { return cudaGraphLaunch(ge, s) == cudaSuccess; }, 3, 15, s);
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  return ms / launches;
}

size_t weight_bytes(const cu::Weight& w) {
  const size_t n = static_cast<size_t>(w.N) * w.K;
  switch (w.format) {
    case cu::WeightFormat::bf16: return n * 2;
    case cu::WeightFormat::int8_wo:
    case cu::WeightFormat::int8_sq: return n + w.N * 4;
    case cu::WeightFormat::int4_awq: return n / 2 + n / w.group_size * 2;
    case cu::WeightFormat::fp8: return n;
  }
  return n;
}

// GRPST_BENCH_KERNEL_FORMATS=int4_awq,fp8: the linear rows of those formats only (a shorter run
// when one format's kernels changed); unset: every format.
bool kernel_format_selected(cu::WeightFormat f) {
  const char* only = std::getenv("GRPST_BENCH_KERNEL_FORMATS");
  if (!only || !*only) return true;
  const std::string list = std::string(",") + only + ",";
  return list.find(std::string(",") + cu::weight_format_name(f) + ",") != std::string::npos;
}

}  // namespace

// For the other bench files (bench_rows.cu).
bool bench_format_selected(cu::WeightFormat f) { return kernel_format_selected(f); }
double bench_graph_ms(const std::function<bool(int)>& fn, int launches, cudaStream_t s) { return graph_ms(fn, launches, s); }

// Random copies of an N x K weight in format f (groups of 128), enough that timing launches over
// them in turn does not run out of the L2 (60 MB): 2 to 8 of them. *bytes: one copy's weight bytes.
std::vector<DevWeight> bench_weight_copies(cu::WeightFormat f, int N, int K, size_t* bytes) {
  cu::Weight proto;
  proto.format = f;
  proto.N = N;
  proto.K = K;
  proto.group_size = 128;
  *bytes = weight_bytes(proto);
  const int copies = static_cast<int>(std::min<size_t>(8, std::max<size_t>(2, (size_t(512) << 20) / *bytes)));
  std::vector<DevWeight> ws;
  for (int c = 0; c < copies; ++c) ws.push_back(random_device_weight(f, N, K, c));
  cudaDeviceSynchronize();
  return ws;
}

void bench_ceilings() {
  cudaStream_t s;
  cudaStreamCreate(&s);
  const size_t bytes = size_t(4) << 30;
  Dev<uint8_t> a(bytes), b(bytes);
  fill_bytes(a.p, bytes, 1);
  fill_bytes(b.p, bytes, 2);
  cudaDeviceSynchronize();
  const double copy_ms = time_ms([&] { return cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, s) == cudaSuccess; }, 2, 10, s);
  g_copy_gbs = 2.0 * bytes / (copy_ms * 1e-3) / 1e9;
  Bench::get().add("ceiling", "device copy bandwidth (read+write)", g_copy_gbs, "GB/s", "4 GiB cudaMemcpyAsync D2D, median of 10");
  Dev<uint32_t> sink(1);
  const double read_ms = time_ms([&] {
    read_kernel<<<132 * 8, 512, 0, s>>>(reinterpret_cast<const uint4*>(a.p), bytes / 16, sink.p);
    return cudaGetLastError() == cudaSuccess;
  }, 2, 10, s);
  Bench::get().add("ceiling", "device read bandwidth", bytes / (read_ms * 1e-3) / 1e9, "GB/s", "4 GiB streamed by a kernel");

  cu::LtContext* lt = nullptr;
  if (!Checks::get().status("bench lt_create", cu::lt_create(&lt, 64u << 20))) return;
  const int n = 8192;
  Dev<uint16_t> x(size_t(n) * n), w(size_t(n) * n), y(size_t(n) * n);
  fill_bf16(reinterpret_cast<cu::bf16*>(x.p), x.n, 1.f, 0.f, 3);
  fill_bf16(reinterpret_cast<cu::bf16*>(w.p), w.n, 1.f, 0.f, 4);
  cudaDeviceSynchronize();
  cu::Exec ex{s, false};
  const double gemm_ms = time_ms([&] {
    return cu::gemm_bf16(lt, x.as<cu::bf16>(), w.as<cu::bf16>(), y.p, false, false, n, n, n, ex).ok();
  }, 3, 10, s);
  Bench::get().add("ceiling", "bf16 GEMM 8192^3 (cuBLASLt)", 2.0 * n * n * n / (gemm_ms * 1e-3) / 1e12, "TFLOP/s", "random data");
  Dev<uint8_t> xq(size_t(n) * n), wq(size_t(n) * n);
  fill_e4m3(xq.p, xq.n, 4.f, 5);
  fill_e4m3(wq.p, wq.n, 4.f, 6);
  Dev<float> one(std::vector<float>{1.f});
  const double fp8_ms = time_ms([&] {
    return cu::gemm_fp8(lt, xq.p, wq.p, one.p, one.p, y.as<cu::bf16>(), false, n, n, n, ex).ok();
  }, 3, 10, s);
  Bench::get().add("ceiling", "fp8 GEMM 8192^3 (cuBLASLt)", 2.0 * n * n * n / (fp8_ms * 1e-3) / 1e12, "TFLOP/s", "random data");
  cu::lt_destroy(lt);
  cudaStreamDestroy(s);
}

// The tiled weight-only GEMM at M rows: the block shape and K split it chooses, then each
// forced (GRPST_CUDA_WO_TILED_CONFIG="rows,splits"), with graph-timed launches over weight copies.
void bench_wo_tiled(const char* shape, const std::vector<DevWeight>& ws, int copies, size_t wb, const cu::bf16* x, void* y,
                    int M, const cu::SplitScratch& sc, cudaStream_t s) {
  int sms = 132;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const cu::Weight& w0 = ws[0].w;
  // "previous": the shape chosen without whole waves (GRPST_CUDA_WO_TILED_WAVES=0), from 33 rows
  for (const char* cfg : {"", "previous", "64,1", "64,2", "64,4", "64,8", "128,1", "128,2", "128,4", "128,8", "256,1", "256,2",
                          "256,4", "256,8"}) {
    const bool previous = std::string(cfg) == "previous";
    if (previous && M <= 32) continue;
    if (previous) setenv("GRPST_CUDA_WO_TILED_WAVES", "0", 1);
    if (cfg[0] && !previous) setenv("GRPST_CUDA_WO_TILED_CONFIG", cfg, 1);
    else unsetenv("GRPST_CUDA_WO_TILED_CONFIG");
    if (cfg[0] && std::atoi(cfg) == 64 && w0.N > 24576) continue;
    cu::LinearOut out;
    out.y = y;
    const double ms = graph_ms([&](int i) { return cu::linear_wo_tiled(x, ws[i % copies].w, out, M, sc, sms, cu::Exec{s, true}).ok(); },
                               4 * copies, s);
    const double gbs = wb / (ms * 1e-3) / 1e9;
    const double tflops = 2.0 * M * w0.N * w0.K / (ms * 1e-3) / 1e12;
    char note[200];
    int rows = 0;
    const int splits = cu::linear_wo_tiled_splits(w0, M, sc, sms, &rows);
    std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw, %.0f TFLOP/s, %d rows x %d K slices", ms * 1e3,
                  100.0 * gbs / g_copy_gbs, tflops, rows, splits);
    Bench::get().add("linear", std::string(shape) + " " + cu::weight_format_name(w0.format) + " M=" + std::to_string(M) +
                                   " tiled " + (cfg[0] ? cfg : "chosen"), gbs, "GB/s", note);
    unsetenv("GRPST_CUDA_WO_TILED_WAVES");
  }
  unsetenv("GRPST_CUDA_WO_TILED_CONFIG");
}

void bench_kernels() {
  cudaStream_t s;
  cudaStreamCreate(&s);
  cu::LtContext* lt = nullptr;
  if (!Checks::get().status("bench lt_create", cu::lt_create(&lt, 64u << 20))) return;
  struct Shape { const char* name; int N, K; };
  const Shape shapes[] = {{"qkv 6144x4096", 6144, 4096}, {"o 4096x4096", 4096, 4096}, {"gate_up 24576x4096", 24576, 4096},
                          {"down 4096x12288", 4096, 12288}, {"lm_head 151936x4096", 151936, 4096}};
  const cu::WeightFormat formats[] = {cu::WeightFormat::bf16, cu::WeightFormat::int8_wo, cu::WeightFormat::int4_awq,
                                      cu::WeightFormat::fp8, cu::WeightFormat::int8_sq};
  Rng r(1);
  // linear_wo_tiled's split-K scratch: 8 slices of the widest layer at 64 rows
  const DevSplitScratch split_scratch(size_t(64) * 24576 * 8, 151936);
  const cu::SplitScratch split = split_scratch.get();
  for (const auto& sh : shapes) {
    Dev<uint16_t> x(size_t(64) * sh.K), y(size_t(64) * sh.N * 2);
    Dev<uint8_t> xq(size_t(64) * sh.K);  // e4m3 activations for cuBLASLt's fp8 GEMM
    fill_e4m3(xq.p, xq.n, 1.f, 11);
    fill_bf16(x.as<cu::bf16>(), x.n, 1.f, 0.f, 9);
    for (auto f : formats) {
      if (!kernel_format_selected(f)) continue;
      size_t wb = 0;
      const std::vector<DevWeight> ws = bench_weight_copies(f, sh.N, sh.K, &wb);
      const int copies = static_cast<int>(ws.size());
      // The weight-streaming GEMV (what the forward runs up to 8 rows) and, as "previous", the
      // bf16 GEMV / skinny kernel it replaced.
      for (int M : {1, 8})
        // the streaming GEMV, the previous kernel, the general streaming GEMV, and for int8_sq the
        // streaming GEMV with its amax by one warp per row (before stream_row_stats)
        for (int variant : {0, 1, 2, 3}) {
          if (variant == 3 && f != cu::WeightFormat::int8_sq) continue;
          const bool stream = variant != 1;
          if (variant == 2 && M == 1) continue;  // one row: the variants below
          if (stream && (!new_decode_kernels() || !cu::linear_stream_supported(ws[0].w, M))) continue;
          if (!stream && M == 8 && f != cu::WeightFormat::bf16 && f != cu::WeightFormat::int4_awq) continue;
          if (variant == 2) setenv("GRPST_CUDA_STREAM_EXACT", "0", 1);
          if (variant == 3) setenv("GRPST_CUDA_STREAM_BLOCK_STATS", "0", 1);
          cu::LinearIn in;
          in.x = x.as<cu::bf16>();
          cu::LinearOut out;
          out.y = y.p;
          const cu::Exec ex{s, true};
          const double ms = graph_ms([&](int i) {
            const cu::Weight& w = ws[i % copies].w;
            if (stream) return cu::linear_stream(in, w, out, M, ex).ok();
            return (f == cu::WeightFormat::bf16 ? cu::gemv_bf16(in, static_cast<const cu::bf16*>(w.data), out, M, w.N, w.K, ex)
                                                : cu::linear_skinny(in, w, out, M, ex)).ok();
          }, 4 * copies, s);
          const double gbs = wb / (ms * 1e-3) / 1e9;
          char note[160];
          std::snprintf(note, sizeof note, "%.1f us, %.0f GB/s = %.1f%% of copy bw", ms * 1e3, gbs, 100.0 * gbs / g_copy_gbs);
          Bench::get().add("linear", std::string(sh.name) + " " + cu::weight_format_name(f) + " M=" + std::to_string(M) +
                                         (variant == 1 ? " previous kernel" : variant == 2 ? " general"
                                          : variant == 3 ? " amax by one warp per row" : ""),
                           gbs, "GB/s", note);
          unsetenv("GRPST_CUDA_STREAM_EXACT");
          unsetenv("GRPST_CUDA_STREAM_BLOCK_STATS");
        }
      if ((f == cu::WeightFormat::int4_awq || f == cu::WeightFormat::fp8) && new_decode_kernels()) {
        // The streaming GEMV's variants at one row: register buffers at two and at three blocks per
        // SM, and the cp.async ring (where it does not fit, the register kernel runs); each as the
        // exact one-token kernel (what these shapes take) and as the general one.
        const char* variants[][4] = {{"register 2 blocks/SM", "2", "0", "1"}, {"register 3 blocks/SM", "3", "0", "1"},
                                     {"cp.async ring", "2", "1", "1"}, {"register 2 blocks/SM general", "2", "0", "0"},
                                     {"register 3 blocks/SM general", "3", "0", "0"}, {"cp.async ring general", "2", "1", "0"}};
        for (const auto& v : variants) {
          setenv("GRPST_CUDA_STREAM_OCCUPANCY", v[1], 1);
          setenv("GRPST_CUDA_STREAM_RING", v[2], 1);
          setenv("GRPST_CUDA_STREAM_EXACT", v[3], 1);
          cu::LinearIn in;
          in.x = x.as<cu::bf16>();
          cu::LinearOut out;
          out.y = y.p;
          const cu::Exec ex{s, true};
          const double ms = graph_ms([&](int i) { return cu::linear_stream(in, ws[i % copies].w, out, 1, ex).ok(); }, 4 * copies, s);
          const double gbs = wb / (ms * 1e-3) / 1e9;
          char note[160];
          std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw", ms * 1e3, 100.0 * gbs / g_copy_gbs);
          Bench::get().add("linear", std::string(sh.name) + " " + cu::weight_format_name(f) + " M=1 " + v[0], gbs, "GB/s", note);
        }
        unsetenv("GRPST_CUDA_STREAM_OCCUPANCY");
        unsetenv("GRPST_CUDA_STREAM_RING");
        unsetenv("GRPST_CUDA_STREAM_EXACT");
      }
      if (f == cu::WeightFormat::fp8 || f == cu::WeightFormat::int8_wo || f == cu::WeightFormat::int4_awq) {
        // Batched decode rows: the skinny kernel, and for fp8 cuBLASLt's fp8 GEMM (what the
        // forward takes past its skinny crossover; a refusal is reported with cuBLASLt's status).
        for (int M : {16, 32, 64}) {
          cu::LinearIn in;
          in.x = x.as<cu::bf16>();
          cu::LinearOut out;
          out.y = y.p;
          const cu::Exec ex{s, true};
          const double ms = graph_ms([&](int i) { return cu::linear_skinny(in, ws[i % copies].w, out, M, ex).ok(); }, 4 * copies, s);
          const double gbs = wb / (ms * 1e-3) / 1e9;
          char note[200];
          std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw", ms * 1e3, 100.0 * gbs / g_copy_gbs);
          Bench::get().add("linear", std::string(sh.name) + " " + cu::weight_format_name(f) + " M=" + std::to_string(M) + " skinny",
                           gbs, "GB/s", note);
          if (f != cu::WeightFormat::fp8) {
            bench_wo_tiled(sh.name, ws, copies, wb, x.as<cu::bf16>(), y.p, M, split, s);
            if (M != 64 || sh.N > 24576) continue;
            // The GEMM path's dequantization to bf16 (bytes read + written, against the copy).
            Dev<uint16_t> wt(size_t(sh.N) * sh.K);
            const double dq_ms = graph_ms([&](int i) { return cu::dequant_weight(ws[i % copies].w, wt.as<cu::bf16>(), ex).ok(); },
                                          2 * copies, s);
            const double dq_gbs = (wb + 2.0 * sh.N * sh.K) / (dq_ms * 1e-3) / 1e9;
            std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw (read + written)", dq_ms * 1e3, 100.0 * dq_gbs / g_copy_gbs);
            Bench::get().add("linear", std::string(sh.name) + " " + cu::weight_format_name(f) + " dequantize to bf16", dq_gbs,
                             "GB/s", note);
            continue;
          }
          const cu::Weight& w0 = ws[0].w;
          const cu::Status st = cu::gemm_fp8(lt, xq.p, static_cast<const uint8_t*>(w0.data), w0.x_scale, w0.w_scale,
                                             y.as<cu::bf16>(), false, M, w0.N, w0.K, cu::Exec{s, false});
          cudaStreamSynchronize(s);
          if (!st.ok()) {
            std::snprintf(note, sizeof note, "refused: %s", st.message().c_str());
            Bench::get().add("linear", std::string(sh.name) + " fp8 M=" + std::to_string(M) + " cuBLASLt", 0, "GB/s", note);
            continue;
          }
          const double lt_ms = graph_ms([&](int i) {
            const cu::Weight& w = ws[i % copies].w;
            return cu::gemm_fp8(lt, xq.p, static_cast<const uint8_t*>(w.data), w.x_scale, w.w_scale, y.as<cu::bf16>(), false,
                                M, w.N, w.K, cu::Exec{s, false}).ok();
          }, 4 * copies, s);
          const double lt_gbs = wb / (lt_ms * 1e-3) / 1e9;
          std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw", lt_ms * 1e3, 100.0 * lt_gbs / g_copy_gbs);
          Bench::get().add("linear", std::string(sh.name) + " fp8 M=" + std::to_string(M) + " cuBLASLt", lt_gbs, "GB/s", note);
        }
      }
      if (f == cu::WeightFormat::bf16)
        for (int M : {1, 16, 32, 64}) {  // what the quantized formats' batched rows compare with
          const cu::Exec ex{s, false};
          const double ms = graph_ms([&](int i) {
            const cu::Weight& w = ws[i % copies].w;
            return cu::gemm_bf16(lt, x.as<cu::bf16>(), static_cast<const cu::bf16*>(w.data), y.p, false, false, M, w.N, w.K, ex).ok();
          }, 4 * copies, s);
          const double gbs = wb / (ms * 1e-3) / 1e9;
          char note[160];
          std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw", ms * 1e3, 100.0 * gbs / g_copy_gbs);
          Bench::get().add("linear", std::string(sh.name) + " cuBLASLt bf16 M=" + std::to_string(M), gbs, "GB/s", note);
        }
      // The warp-specialized wgmma GEMM that takes bf16 decode batches from 5 rows (linear_bf16_ws.cu):
      // each kernel (GRPST_CUDA_BF16_WS_KERNEL) at its rows, its K slices as planned and, at 64
      // tokens by tokens, forced (GRPST_CUDA_BF16_WS_SPLITS)
      if (f == cu::WeightFormat::bf16 && cu::linear_bf16_ws_supported(ws[0].w))
        for (int kernel : {0, 1, 2, 3})
          for (int M : {8, 16, 32, 64})
            for (const char* splits : {"", "s", "1", "2", "4", "8"}) {  // "s": planned slices, spread
              if (kernel > 0 && M < 32) continue;
              if (splits[0] && splits[0] != 's' && (kernel == 0 || M != 64)) continue;
              if (splits[0] == 's' && M < 32) continue;
              setenv("GRPST_CUDA_BF16_WS_SPREAD", splits[0] == 's' ? "1" : "0", 1);
              if (splits[0] == 's') splits = "";
              setenv("GRPST_CUDA_BF16_WS_KERNEL", std::to_string(kernel).c_str(), 1);
              if (splits[0]) setenv("GRPST_CUDA_BF16_WS_SPLITS", splits, 1);
              else unsetenv("GRPST_CUDA_BF16_WS_SPLITS");
              cu::LinearOut out;
              out.y = y.p;
              int sms = 132;
              cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
              const double ms = graph_ms([&](int i) {
                return cu::linear_bf16_ws(x.as<cu::bf16>(), ws[i % copies].w, out, M, split, sms, cu::Exec{s, true}).ok();
              }, 4 * copies, s);
              const double gbs = wb / (ms * 1e-3) / 1e9;
              const cu::Bf16WsPlan p = cu::linear_bf16_ws_plan(ws[0].w, M, split, sms);
              char note[200];
              std::snprintf(note, sizeof note, "%.1f us, %.1f%% of copy bw, kernel %d, %d K slices%s%s", ms * 1e3,
                            100.0 * gbs / g_copy_gbs, p.kernel, p.splits, p.stream_k ? ", stream-K" : "",
                            p.spread ? ", spread" : "");
              Bench::get().add("linear", std::string(sh.name) + " bf16_ws M=" + std::to_string(M) + " kernel " +
                                             std::to_string(kernel) + (splits[0] ? std::string(" splits ") + splits : "") +
                                             (p.spread ? " spread" : ""),
                               gbs, "GB/s", note);
            }
      unsetenv("GRPST_CUDA_BF16_WS_KERNEL");
      unsetenv("GRPST_CUDA_BF16_WS_SPLITS");
      unsetenv("GRPST_CUDA_BF16_WS_SPREAD");
    }
  }

  // Attention: decode at long contexts (bandwidth), prefill (TFLOP/s).
  const int nh = 32, nkv = 8, hd = 128, bs = 16;
  for (auto cfg : {std::pair<int, int>{1, 512}, std::pair<int, int>{1, 32768}, std::pair<int, int>{64, 1536}}) {
    const int B = cfg.first, ctx = cfg.second, bps = (ctx + bs - 1) / bs;
    Dev<uint16_t> kc(size_t(B) * bps * nkv * bs * hd), vc(kc.n), q(size_t(B) * nh * hd), o(q.n);
    fill_bf16(kc.as<cu::bf16>(), kc.n, 1.f, 0, 1);
    fill_bf16(vc.as<cu::bf16>(), vc.n, 1.f, 0, 2);
    fill_bf16(q.as<cu::bf16>(), q.n, 1.f, 0, 3);
    std::vector<int32_t> tables(size_t(B) * bps), ctxs(B, ctx);
    for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>(i);
    Dev<int32_t> dt(tables), dc(ctxs);
    const int splits = cu::attention_decode_splits(B, nkv, ctx, 132);
    Dev<float> ws(cu::attention_decode_workspace(B, nh, hd, splits) + 1);
    cudaMemset(ws.p, 0, ws.n * sizeof(float));  // the merge counters start at zero
    const cu::KvGeometry geo{B * bps, bs, nkv, hd, cu::KvDtype::bf16};
    const cu::KvLayer layer{kc.p, vc.p, 1.f, 1.f};
    const cu::Exec ex{s, true};
    for (bool legacy : {false, true}) {  // the staged kernel, then the register-streaming one it replaced
      if (!legacy && !new_decode_kernels()) continue;
      if (legacy) setenv("GRPST_CUDA_LEGACY_DECODE", "1", 1);
      const double ms = graph_ms([&](int) {
        return cu::attention_decode(q.as<cu::bf16>(), dc.p, 0, nullptr, {dt.p, bps}, B, nh, geo, layer, 0.088f, splits, ws.p,
                                    o.as<cu::bf16>(), ex).ok();
      }, 20, s);
      if (new_decode_kernels()) unsetenv("GRPST_CUDA_LEGACY_DECODE");
      const double bytes = 2.0 * B * ctx * nkv * hd * 2;
      char note[128];
      std::snprintf(note, sizeof note, "%.1f us per layer, %d splits, %.1f%% of copy bw", ms * 1e3, splits,
                    100.0 * bytes / (ms * 1e-3) / 1e9 / g_copy_gbs);
      Bench::get().add("attention", "decode B=" + std::to_string(B) + " ctx=" + std::to_string(ctx) + (legacy ? " previous kernel" : ""),
                       bytes / (ms * 1e-3) / 1e9, "GB/s", note);
    }
    // The tensor-core kernel, at the runtime's splits and at twice as many (tail of the last wave);
    // one sequence at 512 keys also at a quarter and half as many (fewer partials to merge, every
    // warp of a block busy).
    std::vector<int> split_counts{splits, 2 * splits};
    if (B == 1 && ctx <= 512) split_counts.insert(split_counts.end(), {std::max(1, splits / 4), std::max(1, splits / 2)});
    for (int sp : split_counts) {
      Dev<float> ws2(cu::attention_decode_workspace(B, nh, hd, sp) + 1);
      cudaMemset(ws2.p, 0, ws2.n * sizeof(float));
      const double ms = graph_ms([&](int) {
        return cu::attention_decode_mma(q.as<cu::bf16>(), dc.p, 0, nullptr, {dt.p, bps}, B, nh, geo, layer, 0.088f, sp,
                                        ws2.p, o.as<cu::bf16>(), ex).ok();
      }, 20, s);
      const double bytes = 2.0 * B * ctx * nkv * hd * 2;
      char note[128];
      std::snprintf(note, sizeof note, "%.1f us per layer, %d splits, %.1f%% of copy bw", ms * 1e3, sp,
                    100.0 * bytes / (ms * 1e-3) / 1e9 / g_copy_gbs);
      Bench::get().add("attention", "decode B=" + std::to_string(B) + " ctx=" + std::to_string(ctx) + " mma" +
                       (sp == splits ? "" : sp == 2 * splits ? " 2x splits" : " " + std::to_string(sp) + " splits"),
                       bytes / (ms * 1e-3) / 1e9, "GB/s", note);
    }
  }
  // The staged kernel on an fp8 cache (the decode attention of fp8 / int8 KV caches) at one
  // sequence: split counts, each merged in a thread-block cluster (up to 16) and by the last block.
  if (new_decode_kernels())
    for (int ctx : {512, 2048, 8192, 32768}) {
      const int B = 1, bps = (ctx + bs - 1) / bs;
      Dev<uint8_t> kc(size_t(bps) * nkv * bs * hd), vc(kc.n);
      Dev<uint16_t> q(size_t(nh) * hd), o(q.n);
      fill_e4m3(kc.p, kc.n, 1.f, 4);
      fill_e4m3(vc.p, vc.n, 1.f, 5);
      fill_bf16(q.as<cu::bf16>(), q.n, 1.f, 0, 6);
      std::vector<int32_t> tables(bps);
      for (int i = 0; i < bps; ++i) tables[i] = i;
      Dev<int32_t> dt(tables), dc(std::vector<int32_t>{ctx});
      const cu::KvGeometry geo{bps, bs, nkv, hd, cu::KvDtype::fp8};
      const cu::KvLayer layer{kc.p, vc.p, 1.f, 1.f};
      const cu::Exec ex{s, true};
      const int runtime_splits = cu::attention_decode_splits(B, nkv, ctx, 132);
      for (int sp : {4, 8, 16, 33}) {
        if (sp > runtime_splits && sp != 4) continue;
        Dev<float> ws(cu::attention_decode_workspace(B, nh, hd, sp) + 1);
        cudaMemset(ws.p, 0, ws.n * sizeof(float));
        for (const char* cluster : {"1", "0"}) {
          if (sp > 16 && cluster[0] == '1') continue;
          setenv("GRPST_CUDA_STAGED_CLUSTER_MERGE", cluster, 1);
          const double ms = graph_ms([&](int) {
            return cu::attention_decode(q.as<cu::bf16>(), dc.p, 0, nullptr, {dt.p, bps}, B, nh, geo, layer, 0.088f, sp,
                                        ws.p, o.as<cu::bf16>(), ex).ok();
          }, 20, s);
          const double bytes = 2.0 * B * ctx * nkv * hd;
          char note[128];
          std::snprintf(note, sizeof note, "%.1f us per layer, %d splits (the runtime's: %d), %.1f%% of copy bw", ms * 1e3,
                        sp, runtime_splits, 100.0 * bytes / (ms * 1e-3) / 1e9 / g_copy_gbs);
          Bench::get().add("attention", "decode fp8 KV B=1 ctx=" + std::to_string(ctx) + " " + std::to_string(sp) +
                           " splits, merged " + (cluster[0] == '1' ? "in a cluster" : "by the last block"),
                           bytes / (ms * 1e-3) / 1e9, "GB/s", note);
        }
      }
      unsetenv("GRPST_CUDA_STAGED_CLUSTER_MERGE");
    }
  // Prefill: the FA2-layout kernel with 4 (the default) and 8 warps per block, then the
  // 16-rows-per-warp one with 8 and with 4 warps per block (GRPST_CUDA_PREFILL_V1=1).
  struct PrefillVariant {
    const char* name;
    const char* v1;
    const char* warps;  // GRPST_CUDA_PREFILL_FA2_WARPS or GRPST_CUDA_PREFILL_WARPS
  };
  const PrefillVariant variants[] = {
      {"fa2 warps=4", "0", "4"}, {"fa2 warps=8", "0", "8"}, {"v1 warps=8", "1", "8"}, {"v1 warps=4", "1", "4"}};
  constexpr int kVariants = 4;
  double best_ms[kVariants] = {0, 0, 0, 0};  // 32k prefill per layer of each variant
  for (int T : {8192, 32768}) {
    const int bps = T / bs;
    Dev<uint16_t> kc(size_t(bps) * nkv * bs * hd), vc(kc.n), q(size_t(T) * nh * hd), o(q.n);
    fill_bf16(kc.as<cu::bf16>(), kc.n, 1.f, 0, 1);
    fill_bf16(vc.as<cu::bf16>(), vc.n, 1.f, 0, 2);
    fill_bf16(q.as<cu::bf16>(), q.n, 1.f, 0, 3);
    std::vector<int32_t> tables(bps);
    for (int i = 0; i < bps; ++i) tables[i] = i;
    Dev<int32_t> dt(tables), qs(std::vector<int32_t>{0}), ql(std::vector<int32_t>{T}), cl(std::vector<int32_t>{T}),
        si(std::vector<int32_t>{0});
    const cu::PrefillBatch pb{1, T, T, qs.p, ql.p, cl.p, si.p, nullptr, nullptr, 0};
    const cu::KvGeometry geo{bps, bs, nkv, hd, cu::KvDtype::bf16};
    const cu::KvLayer layer{kc.p, vc.p, 1.f, 1.f};
    const cu::Exec ex{s, false};
    for (int v = 0; v < kVariants; ++v) {
      setenv("GRPST_CUDA_PREFILL_V1", variants[v].v1, 1);
      setenv(variants[v].v1[0] == '1' ? "GRPST_CUDA_PREFILL_WARPS" : "GRPST_CUDA_PREFILL_FA2_WARPS", variants[v].warps, 1);
      const double ms = time_ms([&] {
        return cu::attention_prefill(q.as<cu::bf16>(), pb, {dt.p, bps}, nh, geo, layer, 0.088f, o.as<cu::bf16>(), ex).ok();
      }, 2, 5, s);
      const double flops = 4.0 * nh * hd * (static_cast<double>(T) * (T + 1) / 2);
      char note[96];
      std::snprintf(note, sizeof note, "%.2f ms per layer (causal FLOPs), %s", ms, variants[v].name);
      Bench::get().add("attention", "prefill T=" + std::to_string(T) + " " + variants[v].name, flops / (ms * 1e-3) / 1e12,
                       "TFLOP/s", note);
      if (T == 32768) best_ms[v] = ms;
    }
  }
  // The model benches that follow use the faster prefill kernel at T=32768.
  int best = 0;
  for (int v = 1; v < kVariants; ++v)
    if (best_ms[v] > 0 && (best_ms[best] <= 0 || best_ms[v] < best_ms[best])) best = v;
  setenv("GRPST_CUDA_PREFILL_V1", variants[best].v1, 1);
  setenv(variants[best].v1[0] == '1' ? "GRPST_CUDA_PREFILL_WARPS" : "GRPST_CUDA_PREFILL_FA2_WARPS", variants[best].warps, 1);
  Bench::get().add("attention", std::string("prefill kernel used below: ") + variants[best].name, best_ms[best], "ms",
                   "the faster at T=32768 (per layer)");
  cu::lt_destroy(lt);
  cudaStreamDestroy(s);
}

}  // namespace harness
