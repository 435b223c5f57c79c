// The whole-model benches' steps: device arrays of one step, a decode or prefill batch built in
// them, and a decode step timed as a replayed CUDA graph.
#pragma once
#include "../../../native/src/runtime/cuda_forward.h"
#include "harness.h"

namespace harness {

// Device arrays of one step.
struct StepBuffers {
  Dev<int32_t> tokens, positions, slots, token_seq, tables, q_start, q_len, ctx_len, seq_index, logit_rows;
};

// B decode rows at context ctx (each sequence owns ceil(ctx/16) consecutive blocks).
grpst::cuda::StepInput decode_step(StepBuffers& b, int B, int ctx, int vocab);
// One sequence of `total` prompt tokens, prefilled [start, start + chunk).
grpst::cuda::StepInput prefill_step(StepBuffers& b, int start, int chunk, int total, int vocab);
// Captures one decode step as a graph and returns ms per replay (-1 on failure); graph = false:
// eager steps.
double decode_ms(grpst::cuda::Forward& fwd, const grpst::cuda::StepInput& in, float* logits, bool graph, bool pdl,
                 cudaStream_t s);

}  // namespace harness
