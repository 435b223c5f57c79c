// Tensor parallelism in the addon: createEngine's options.tensorParallel (rank 0 of a group),
// runTensorParallelWorker (ranks > 0, one process each) and ncclUniqueId (the group's bootstrap).
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "grpst/engine.h"
#include "grpst/model_runner.h"
#include "grpst/tensor_store.h"

namespace grpst::addon {

/** options.tensorParallel of createEngine; size 0 when absent. */
struct TpLoad {
  int size = 0;
  std::string nccl_id;                              // ranks in separate processes, over NCCL
  std::vector<std::vector<TensorDesc>> rank_tables;  // every rank in this process, on the CPU
};
TpLoad tp_load_from_js(const Napi::Object& options);

/** The model as rank 0 of `tp` holds it (for sizing the KV cache). */
ModelConfig tp_rank0_config(const ModelConfig& full, const TpLoad& tp);

/**
 * Rank 0's runner: joins the group (blocks until every rank has), loads its shard, wraps it as the
 * leader. Ranks held in this process load their stores as `weights` says and add their reports to `report`.
 */
std::unique_ptr<ModelRunner> make_tp_leader_runner(TpLoad& tp, const std::string& device, const ModelConfig& cfg,
                                                   std::shared_ptr<TensorStore> store, const CpuRunnerOptions& ropts,
                                                   const EngineOptions& eopts, ResolvedEngineOptions& ro,
                                                   const WeightsLoad& weights, WeightsReport& report);

void RegisterTensorParallel(Napi::Env env, Napi::Object exports);

}  // namespace grpst::addon
