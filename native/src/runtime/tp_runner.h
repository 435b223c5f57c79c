// The ranks of a tensor-parallel group as model runners. Rank 0 (the leader) is the runner the
// engine drives: before each call it broadcasts the call (KV allocation, every step's batch:
// tokens, positions, block tables, logit rows) to the other ranks, which replay it on their own
// shard (run_tp_follower). Every rank then issues the same collectives in the same order. The
// broadcast goes through the group's own Collective (NCCL on GPUs): no second channel to set up,
// and it orders itself with the step's collectives. A failure on any rank aborts the group; the
// engine then fails every request, and the processes exit (src/daemon/tp-launch.ts).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grpst/collective.h"
#include "grpst/model_runner.h"
#include "grpst/tensor_parallel.h"

namespace grpst {

/** What a leader owns besides its runner (follower threads, the group); destroyed after Stop. */
struct TpGroupResources {
  virtual ~TpGroupResources() = default;
};

/** Wraps rank 0's runner; `comm` must outlive it (usually inside `owned`). */
std::unique_ptr<ModelRunner> make_tp_leader(std::unique_ptr<ModelRunner> inner, Collective* comm,
                                            std::unique_ptr<TpGroupResources> owned);

/** Ranks > 0: runs rank 0's calls on `runner` until rank 0 stops the group. Throws on failure (after aborting the group). */
void run_tp_follower(ModelRunner& runner, Collective& comm);

class TensorStore;
/**
 * A whole group on the CPU inside this process: one CPU runner per rank's tensor table, ranks > 0
 * in threads of their own, joined through an in-process group. Returns rank 0's leader.
 */
std::unique_ptr<ModelRunner> make_in_process_tp(const ModelConfig& full, std::vector<std::shared_ptr<TensorStore>> stores,
                                                const CpuRunnerOptions& opts);

}  // namespace grpst
