// How the GPU forward pass (cuda_forward.cu) combines one rank's partial results with the other
// ranks' in a tensor-parallel group. The residual stream stays replicated: after o_proj and
// down_proj rank 0 holds residual + its partial sum and every other rank its partial sum alone, so
// one all-reduce of the stream is the new residual on every rank (no extra buffer or add kernel).
// Vocabulary-parallel embedding: a masked gather of this rank's rows, then an all-reduce.
// lm_head: each rank's logits of its vocabulary rows, all-gathered into [rows, vocab] on every
// rank (rank 0 samples from them; the gathered logits also serve logprobs).
#pragma once
#include <memory>

#include "../kernels/cuda/kernels.h"

namespace grpst {
class Collective;
struct TpShard;
}

namespace grpst::cuda {

class TensorParallelHooks {
 public:
  virtual ~TensorParallelHooks() = default;
  /** out[t] = row ids[t] of the whole vocabulary's embedding; `table` holds this rank's rows. */
  virtual Status embed(const int32_t* ids /*[T]*/, const bf16* table /*[V/N,H]*/, bf16* out /*[T,H]*/, int T, int H,
                       const Exec& ex) = 0;
  /** Whether this rank adds the residual in o_proj / down_proj (rank 0) or stores its partial sum. */
  virtual bool keeps_residual() const = 0;
  /** h = the sum over ranks of h, after a row-parallel linear. */
  virtual Status reduce(bf16* h /*[T,H]*/, int T, int H, const Exec& ex) = 0;
  /** Where lm_head writes this rank's logits, [max_logits, V/N] fp32. */
  virtual float* local_logits() = 0;
  /** logits [L, V] = every rank's local_logits side by side. */
  virtual Status gather_logits(float* logits, int L, const Exec& ex) = 0;
};

/** Hooks over `comm` (a device group) for rank shard.rank, with buffers for max_tokens / max_logits rows. */
std::unique_ptr<TensorParallelHooks> make_tensor_parallel_hooks(Collective* comm, const TpShard& shard, int vocab,
                                                                int max_tokens, int max_logits);

}  // namespace grpst::cuda
