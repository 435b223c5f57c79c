// grpst_gpu_harness profile: one launch of each kernel that decides a benchmark target, on
// Qwen3-8B shapes with random data, for Nsight Compute (scripts/gpu/run.sh profile):
// the streaming GEMV (bf16 o_proj and gate_up, int4 and fp8 gate_up, int4 and fp8 down_proj and
// o_proj),
// the tiled weight-only GEMM at 64 tokens, decode attention at 64 x 1536 tokens, and prefill
// attention over 8k tokens, and the bf16 wgmma GEMM against cuBLASLt on qkv at 64 rows (cuBLASLt
// also on o_proj and down_proj there).
#include "device_fill.h"
#include "harness.h"
#include "tests.h"
#include "weights.h"

namespace harness {
namespace cu = grpst::cuda;

void profile_kernels() {
  const cu::Exec ex{nullptr, false};
  Dev<uint16_t> x(size_t(16) * 12288), y(size_t(16) * 24576 * 2);
  fill_bf16(x.as<cu::bf16>(), x.n, 1.f, 0.f, 1);
  cu::LinearIn in;
  in.x = x.as<cu::bf16>();
  cu::LinearOut out;
  out.y = y.p;
  for (auto sh : {std::pair<int, int>{4096, 4096}, std::pair<int, int>{24576, 4096}}) {
    const DevWeight d = random_device_weight(cu::WeightFormat::bf16, sh.first, sh.second, 2);
    Checks::get().status("profile stream bf16", cu::linear_stream(in, d.w, out, 1, ex));
  }
  // int4 and fp8 gate_up (many tiles per block), then int4 and fp8 down_proj and o_proj (one tile
  // per block, the weakest streaming GEMVs at one token)
  const struct { cu::WeightFormat f; int N, K; } quantized[] = {{cu::WeightFormat::int4_awq, 24576, 4096},
                                                               {cu::WeightFormat::fp8, 24576, 4096},
                                                               {cu::WeightFormat::int4_awq, 4096, 12288},
                                                               {cu::WeightFormat::int4_awq, 4096, 4096},
                                                               {cu::WeightFormat::fp8, 4096, 12288},
                                                               {cu::WeightFormat::fp8, 4096, 4096}};
  for (const auto& q : quantized) {
    const DevWeight d = random_device_weight(q.f, q.N, q.K, 4);
    Checks::get().status("profile stream", cu::linear_stream(in, d.w, out, 1, ex));
  }
  {
    // The tiled weight-only GEMM at 64 tokens: int4 gate_up, int4 o_proj (K split), int8_wo down_proj.
    Dev<uint16_t> x64(size_t(64) * 12288), y64(size_t(64) * 24576);
    fill_bf16(x64.as<cu::bf16>(), x64.n, 1.f, 0.f, 13);
    const DevSplitScratch scratch(size_t(64) * 24576 * 4, 24576);
    const cu::SplitScratch sc = scratch.get();
    int sms = 132;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const struct { cu::WeightFormat f; int N, K; } tiled[] = {{cu::WeightFormat::int4_awq, 24576, 4096},
                                                             {cu::WeightFormat::int4_awq, 4096, 4096},
                                                             {cu::WeightFormat::int8_wo, 4096, 12288}};
    for (const auto& t : tiled) {
      const DevWeight d = random_device_weight(t.f, t.N, t.K, 14);
      cu::LinearOut o64;
      o64.y = y64.p;
      Checks::get().status("profile wo_tiled", cu::linear_wo_tiled(x64.as<cu::bf16>(), d.w, o64, 64, sc, sms, ex));
    }
  }
  {
    // The bf16 wgmma GEMM of decode batches (linear_bf16_ws.cu) on qkv at 8 and 64 rows, where it
    // reads the weights at 78% and 57% of the copy bandwidth, and cuBLASLt's kernel at 64 (81%).
    Dev<uint16_t> x64(size_t(64) * 4096), y64(size_t(64) * 6144);
    fill_bf16(x64.as<cu::bf16>(), x64.n, 1.f, 0.f, 15);
    const DevSplitScratch scratch(size_t(64) * 24576 * 8, 151936);
    int sms = 132;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const DevWeight d = random_device_weight(cu::WeightFormat::bf16, 6144, 4096, 16);
    cu::LinearOut o64;
    o64.y = y64.p;
    if (cu::linear_bf16_ws_supported(d.w))
      for (int M : {8, 64})
        Checks::get().status("profile bf16_ws", cu::linear_bf16_ws(x64.as<cu::bf16>(), d.w, o64, M, scratch.get(), sms, ex));
    // cuBLASLt at 64 rows on qkv, then on the 4,096-row projections (o_proj, down_proj), where
    // the narrow kernel's 32-row blocks lose to it (docs/benchmarks-gpu.md).
    cu::LtContext* lt = nullptr;
    if (Checks::get().status("profile lt_create", cu::lt_create(&lt, 64u << 20))) {
      Checks::get().status("profile cuBLASLt bf16", cu::gemm_bf16(lt, x64.as<cu::bf16>(), static_cast<const cu::bf16*>(d.w.data),
                                                                 y64.p, false, false, 64, 6144, 4096, ex));
      Dev<uint16_t> x12(size_t(64) * 12288);
      fill_bf16(x12.as<cu::bf16>(), x12.n, 1.f, 0.f, 17);
      for (int K : {4096, 12288}) {
        const DevWeight n4 = random_device_weight(cu::WeightFormat::bf16, 4096, K, 18);
        Checks::get().status("profile cuBLASLt bf16", cu::gemm_bf16(lt, x12.as<cu::bf16>(), static_cast<const cu::bf16*>(n4.w.data),
                                                                   y64.p, false, false, 64, 4096, K, ex));
      }
      cudaDeviceSynchronize();
      cu::lt_destroy(lt);
    }
  }
  {
    const int B = 64, ctx = 1536, nh = 32, nkv = 8, hd = 128, bs = 16, bps = ctx / bs;
    Dev<uint16_t> kc(size_t(B) * bps * nkv * bs * hd), vc(kc.n), q(size_t(B) * nh * hd), o(q.n);
    fill_bf16(kc.as<cu::bf16>(), kc.n, 1.f, 0, 7);
    fill_bf16(vc.as<cu::bf16>(), vc.n, 1.f, 0, 8);
    fill_bf16(q.as<cu::bf16>(), q.n, 1.f, 0, 9);
    std::vector<int32_t> tables(size_t(B) * bps), ctxs(B, ctx);
    for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>(i);
    Dev<int32_t> dt(tables), dc(ctxs);
    Checks::get().status("profile decode attention",
                         cu::attention_decode(q.as<cu::bf16>(), dc.p, 0, nullptr, {dt.p, bps}, B, nh,
                                              {B * bps, bs, nkv, hd, cu::KvDtype::bf16}, {kc.p, vc.p, 1.f, 1.f}, 0.088f,
                                              1, nullptr, o.as<cu::bf16>(), ex));
  }
  {
    const int T = 8192, nh = 32, nkv = 8, hd = 128, bs = 16, bps = T / bs;
    Dev<uint16_t> kc(size_t(bps) * nkv * bs * hd), vc(kc.n), q(size_t(T) * nh * hd), o(q.n);
    fill_bf16(kc.as<cu::bf16>(), kc.n, 1.f, 0, 10);
    fill_bf16(vc.as<cu::bf16>(), vc.n, 1.f, 0, 11);
    fill_bf16(q.as<cu::bf16>(), q.n, 1.f, 0, 12);
    std::vector<int32_t> tables(bps);
    for (int i = 0; i < bps; ++i) tables[i] = i;
    Dev<int32_t> dt(tables), qs(std::vector<int32_t>{0}), ql(std::vector<int32_t>{T}), cl(std::vector<int32_t>{T}),
        si(std::vector<int32_t>{0});
    const cu::PrefillBatch pb{1, T, T, qs.p, ql.p, cl.p, si.p, nullptr, nullptr, 0};
    Checks::get().status("profile prefill attention",
                         cu::attention_prefill(q.as<cu::bf16>(), pb, {dt.p, bps}, nh, {bps, bs, nkv, hd, cu::KvDtype::bf16},
                                               {kc.p, vc.p, 1.f, 1.f}, 0.088f, o.as<cu::bf16>(), ex));
  }
  cudaDeviceSynchronize();
}

}  // namespace harness
