// The device sampler's CPU twin: the same rules as the GPU's sampling and top-logprobs kernels
// (kernels/cuda/kernels.h: bans, biases and the grammar's mask, penalties, temperature, top_k /
// top_p / min_p, a Gumbel-max draw from the seeded noise of device_sample_rules.h), on the host.
// The CUDA parity tests hold the kernels to it; a CPU engine loaded with deviceSamplerTwin draws
// its device rows with it, so the scheduler's device path (edits, masks, penalty lists, drafted
// rows) is exercised where no GPU is.
#pragma once
#include <memory>

#include "grpst/model_runner.h"

namespace grpst {

/** Draws batch.device_samples and reads batch.device_prompt_rows from logits [logit rows, vocab] into `out`, as the GPU would. */
void draw_device_samples_on_host(const StepBatch& batch, const float* logits, int vocab, DeviceDrawResults& out);

/** `inner` (a runner that samples nothing itself) with its device rows drawn by the twin. */
std::unique_ptr<ModelRunner> with_device_sampler_twin(std::unique_ptr<ModelRunner> inner);

}  // namespace grpst
