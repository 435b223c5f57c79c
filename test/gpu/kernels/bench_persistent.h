// The persistent decode step against the separate kernels in the whole-model bench
// (bench_model.cu), with the kernel's phase breakdown.
#pragma once
#include <functional>
#include <string>

#include "../../../native/src/runtime/cuda_forward.h"

namespace harness {

// report(name, batch, context, ms per step) adds a decode row with its roofline.
using DecodeReport = std::function<void(const std::string&, int, int, double)>;

// One sequence at 512, 4,096 and 32,768 keys: the persistent step and the separate kernels timed
// in the same run, their logits compared, the persistent step's phases per layer (block 0's
// clock64 stamps), and at 512 keys the same launches without the arithmetic (the weight stream
// and the barriers alone). Leaves the persistent step at its default.
void sweep_persistent(grpst::cuda::Forward& fwd, int vocab, const DecodeReport& report, float* logits, cudaStream_t s);

}  // namespace harness
