// Decode choices of the whole-model bench measured against each other on one Forward (templates
// over the bench's report callback): the bf16 GEMV / cuBLASLt crossover and attention split
// targets, and the streaming GEMV's row statistics by the block or by one warp per row.
#pragma once
#include <cstdlib>
#include <string>
#include <vector>

#include "../../../native/src/kernels/cuda/env_switch.h"
#include "../../../native/src/runtime/cuda_forward.h"
#include "bench_steps.h"
#include "harness.h"

namespace harness {
namespace cu = grpst::cuda;

// The bf16 decode choices measured against each other in one run (docs/benchmarks-gpu.md takes the
// defaults from these): the rows up to which the GEMV beats cuBLASLt, and the blocks per SM that
// the tensor-core decode attention's splits aim at (one or two), at one sequence of 512 to 32k keys.
template <class Report>
void sweep_bf16_decode(cu::Forward& fwd, int vocab, Report&& report, float* logits, cudaStream_t s) {
  StepBuffers bufs;  // a step's arrays stay allocated while it is in use
  fwd.set_bf16_stream_max_rows(0);  // the GEMV / cuBLASLt crossover, one row included
  for (int B : {1, 2, 3, 4}) {
    cu::StepInput inb = decode_step(bufs, B, 512, vocab);
    for (int rows : {0, 1, 2, 4}) {
      if (rows > B) continue;
      fwd.set_gemv_max_rows(rows);
      report("b" + std::to_string(B) + " ctx512 gemv up to " + std::to_string(rows) + " rows", B, 512,
             decode_ms(fwd, inb, logits, true, true, s));
    }
  }
  fwd.set_gemv_max_rows(cu::kDefaultGemvMaxRows);
  fwd.set_bf16_stream_max_rows(cu::kDefaultBf16StreamMaxRows);
  fwd.set_mma_split_cap(0, 0);  // the blocks-per-SM choice alone
  fwd.set_mma_few_splits(0, 0);
  for (int ctx : {512, 4096, 32768}) {
    cu::StepInput in = decode_step(bufs, 1, ctx, vocab);
    for (int bps : {1, 2}) {
      fwd.set_mma_one_block_max_context(bps == 1 ? 1 << 30 : 0);
      report("b1 ctx" + std::to_string(ctx) + " attention splits for " + std::to_string(bps) + " block(s) per SM", 1, ctx,
             decode_ms(fwd, in, logits, true, true, s));
    }
  }
  fwd.set_mma_one_block_max_context(cu::kMmaOneBlockPerSmMaxContext);
  // The short-context split caps: off (the GPU-filling count), at most max(S, ctx / 256) splits
  // alone, and the default (that cap, and at most 4 splits below 768 keys).
  for (int ctx : {512, 768, 1024, 2048}) {
    cu::StepInput in = decode_step(bufs, 1, ctx, vocab);
    fwd.set_mma_few_splits(0, 0);
    for (int min_splits : {0, 4, 8, 12}) {
      fwd.set_mma_split_cap(min_splits, min_splits ? cu::kDefaultMmaSplitKeys : 0);
      report("b1 ctx" + std::to_string(ctx) + " attention splits " +
                 (min_splits ? "capped at max(" + std::to_string(min_splits) + ", ctx/256)" : std::string("filling the GPU")),
             1, ctx, decode_ms(fwd, in, logits, true, true, s));
    }
    fwd.set_mma_split_cap(cu::kMmaMinSplits, cu::kDefaultMmaSplitKeys);
    fwd.set_mma_few_splits(cu::kMmaFewSplits, cu::kDefaultMmaFewSplitsBelow);
    report("b1 ctx" + std::to_string(ctx) + " attention splits capped at max(8, ctx/256), at most 4 below 768 keys (default)",
           1, ctx, decode_ms(fwd, in, logits, true, true, s));
    if (ctx > 768) continue;
    // Where the default's few splits sit: at most F splits whatever the context.
    for (int few : {2, 3, 4, 6}) {
      fwd.set_mma_few_splits(few, 1 << 30);
      report("b1 ctx" + std::to_string(ctx) + " attention splits at most " + std::to_string(few), 1, ctx,
             decode_ms(fwd, in, logits, true, true, s));
    }
    fwd.set_mma_few_splits(cu::kMmaFewSplits, cu::kDefaultMmaFewSplitsBelow);
  }
  // The default caps only one sequence at 4 splits; a few sequences at 512 keys either way.
  for (int B : {2, 4}) {
    cu::StepInput in = decode_step(bufs, B, 512, vocab);
    report("b" + std::to_string(B) + " ctx512 attention splits as the default", B, 512,
           decode_ms(fwd, in, logits, true, true, s));
    fwd.set_mma_few_splits(4, 1 << 30);
    report("b" + std::to_string(B) + " ctx512 attention splits at most 4", B, 512,
           decode_ms(fwd, in, logits, true, true, s));
    fwd.set_mma_few_splits(cu::kMmaFewSplits, cu::kDefaultMmaFewSplitsBelow);
  }
}

// The quantized decode choices (the defaults in cuda_forward.h come from these): the fused decode
// attention against the separate q/k norm + tensor-core decode attention, and past the streaming
// GEMV's 8 rows the skinny tensor-core kernel against a dequantized weight (int4 / int8_wo) or fp8
// activations (fp8) through cuBLASLt. int8_sq keeps its own crossover (cuBLASLt from 17 rows).
template <class Report>
void sweep_quantized_decode(cu::Forward& fwd, cu::WeightFormat f, int vocab, int ctx, Report&& report, float* logits,
                            cudaStream_t s) {
  StepBuffers bufs;
  for (int B : {1, 8, 16, 32, 64}) {
    const int c = B == 1 ? 512 : ctx;
    cu::StepInput in = decode_step(bufs, B, c, vocab);
    const std::string at = "b" + std::to_string(B) + " ctx" + std::to_string(c) + " graph+pdl ";
    if (B <= cu::kStreamMaxRows) {
      for (int fused : {0, 64}) {
        fwd.set_fused_decode_max_rows(fused);
        report(at + (fused ? "fused attention" : "norm kernel + mma attention"), B, c, decode_ms(fwd, in, logits, true, true, s));
      }
      fwd.set_fused_decode_max_rows(cu::kDefaultFusedDecodeMaxRows);
    } else if (f != cu::WeightFormat::int8_sq) {
      // int4 / int8_wo: the tiled weight-only GEMM as well, and its step logits against cuBLASLt's
      // on the dequantized weight (the same products summed in another order)
      const bool wo = f == cu::WeightFormat::int4_awq || f == cu::WeightFormat::int8_wo;
      std::vector<float> got[2];
      for (int variant = wo ? 0 : 1; variant < 3; ++variant) {
        const int rows = variant == 2 ? 64 : 8;  // the skinny kernel's rows
        fwd.set_skinny_max_rows(rows, rows, cu::kDefaultInt8SqSkinnyMaxRows);
        fwd.set_wo_tiled_max_rows(variant == 0 ? cu::kWoTiledMaxRows : 0, variant == 0 ? cu::kWoTiledMaxRows : 0);
        report(at + (variant == 0 ? "tiled kernel" : variant == 1 ? "cuBLASLt" : "skinny kernel"), B, c,
               decode_ms(fwd, in, logits, true, true, s));
        if (wo && variant < 2) {
          cudaStreamSynchronize(s);
          got[variant].resize(static_cast<size_t>(B) * vocab);
          cudaMemcpy(got[variant].data(), logits, got[variant].size() * 4, cudaMemcpyDeviceToHost);
        }
      }
      if (wo)
        Checks::get().compare(std::string(cu::weight_format_name(f)) + " b" + std::to_string(B) +
                                  " step logits, tiled kernel against cuBLASLt on the dequantized weight",
                              got[0], got[1], 0.1);
      fwd.set_wo_tiled_max_rows(cu::kDefaultWoTiledMaxRows, cu::kDefaultWoTiledInt8MaxRows);
      fwd.set_skinny_max_rows(cu::kDefaultSkinnyMaxRows, cu::kDefaultFp8SkinnyMaxRows, cu::kDefaultInt8SqSkinnyMaxRows);
    }
  }
  if (!fwd.fp8_gemm_refusal().empty())
    Bench::get().add("decode", std::string(cu::weight_format_name(f)) + " cuBLASLt fp8 GEMM refused", 0, "", fwd.fp8_gemm_refusal());
}

// The streaming GEMV's row statistics (RMSNorm rstd, int8_sq's amax) by one warp per row against
// the whole block (stream_row_stats; the default at one sequence, and for int8_sq), at one
// sequence and at 4 / 8 (the formats that take the streaming GEMV there). The step's logits may
// differ only by rounding (the sums are added in another order; through 36 layers of random
// weights that grows to a few percent, a wrong prologue gives ~1).
template <class Report>
void sweep_row_stats(cu::Forward& fwd, int vocab, bool quantized, Report&& report, float* logits, cudaStream_t s) {
  StepBuffers bufs;
  for (int B : {1, 4, 8}) {
    if (B > 1 && !quantized) continue;
    cu::StepInput in = decode_step(bufs, B, 512, vocab);
    std::vector<float> got[2];
    for (int block : {0, 1}) {
      setenv("GRPST_CUDA_STREAM_BLOCK_STATS", block ? "1" : "0", 1);
      report("b" + std::to_string(B) + " ctx512 graph+pdl row statistics by " + (block ? "the block" : "one warp per row"), B,
             512, decode_ms(fwd, in, logits, true, true, s));
      cudaStreamSynchronize(s);
      got[block].resize(static_cast<size_t>(B) * vocab);
      cudaMemcpy(got[block].data(), logits, got[block].size() * 4, cudaMemcpyDeviceToHost);
    }
    unsetenv("GRPST_CUDA_STREAM_BLOCK_STATS");
    Checks::get().compare("b" + std::to_string(B) + " step logits, row statistics by the block against one warp per row", got[1],
                          got[0], 0.1);
  }
}

}  // namespace harness
