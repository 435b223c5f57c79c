#include "addon/tp_wrap.h"

#include <thread>

#include "addon/convert.h"
#include "grpst/cpu_kernels.h"
#include "runtime/collective_nccl.h"
#include "runtime/cuda_select.h"
#include "runtime/tp_runner.h"
#include "runtime/weights_on_gpu.h"

namespace grpst::addon {

namespace {

struct NcclGroup final : TpGroupResources {
  std::unique_ptr<Collective> comm;
};

CpuRunnerOptions runner_options_from_js(const Napi::Object& opts) {
  CpuRunnerOptions r;
  const unsigned hw = std::thread::hardware_concurrency();
  r.threads = int(get_number(opts, "threads", hw ? hw : 1));
  if (r.threads < 1 || r.threads > 1024) throw Error("threads must be between 1 and 1024");
  r.kernel_level = get_string(opts, "cpuKernels", "");
  r.quantization = get_string(opts, "quantization", "none");
  choose_cpu_level(r.kernel_level);
  return r;
}

/** runTensorParallelWorker(model, tensors, options, {rank, size, ncclId}) -> Promise<void>. */
class WorkerJob : public Napi::AsyncWorker {
 public:
  WorkerJob(Napi::Env env, ModelConfig cfg, std::vector<TensorDesc> table, EngineOptions eopts, CpuRunnerOptions ropts,
            std::string device, int rank, int size, std::string id, WeightsLoad weights)
      : Napi::AsyncWorker(env),
        weights_(weights),
        deferred_(Napi::Promise::Deferred::New(env)),
        cfg_(std::move(cfg)),
        table_(std::move(table)),
        eopts_(std::move(eopts)),
        ropts_(std::move(ropts)),
        device_(std::move(device)),
        rank_(rank),
        size_(size),
        id_(std::move(id)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      TensorParallel tp;
      tp.shard = tp_shard(cfg_, rank_, size_);
      // Shapes are checked before joining, so a bad shard fails here, not as a hang of rank 0.
      // A rank in a process of its own runs on its GPU: the host copy is for the upload alone, never
      // locked (runtime/weights_on_gpu.h), so the rank has no refused lock for rank 0's log.
      const WeightsLoad how = builds_cuda_runner(device_, false) ? for_gpu_upload(weights_) : weights_;
      auto store = std::make_shared<TensorStore>(std::move(table_), how);
      std::unique_ptr<Collective> comm = make_nccl_collective(id_, rank_, size_, rank_);
      tp.comm = comm.get();
      const ModelConfig local = shard_config(cfg_, tp.shard);
      ResolvedEngineOptions ro = resolve_engine_options(eopts_, cfg_, kv_cache_bytes_per_token(local, parse_kv_dtype(eopts_.kv_dtype)));
      ropts_.max_tokens = ro.opts.max_num_tokens;
      ropts_.max_logit_rows = ro.max_logit_rows;
      ropts_.max_seq_len = ro.opts.max_seq_len;
      std::unique_ptr<ModelRunner> runner;
      try {
        // Handed over, so the host copy goes once the shard is on the GPU instead of living as long as the rank.
        runner = make_runner_for_device(device_, cfg_, std::move(store), ropts_, eopts_, ro, tp);
      } catch (...) {
        comm->abort();
        throw;
      }
      run_tp_follower(*runner, *comm);
      runner.reset();
    } catch (const std::exception& e) {
      SetError("tensor parallel rank " + std::to_string(rank_) + ": " + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  WeightsLoad weights_;
  Napi::Promise::Deferred deferred_;
  ModelConfig cfg_;
  std::vector<TensorDesc> table_;
  EngineOptions eopts_;
  CpuRunnerOptions ropts_;
  std::string device_;
  int rank_, size_;
  std::string id_;
};

Napi::Value RunTensorParallelWorker(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsArray() || !info[2].IsObject() || !info[3].IsObject())
    throw Error("runTensorParallelWorker(modelConfig, tensorTable, options, {rank, size, ncclId}) needs four arguments");
  Napi::Object opts = info[2].As<Napi::Object>();
  Napi::Object tp = info[3].As<Napi::Object>();
  const int rank = int(get_number(tp, "rank", -1)), size = int(get_number(tp, "size", 0));
  if (size < 2 || rank < 1 || rank >= size) throw Error("runTensorParallelWorker: rank must be 1 .. size - 1 of a group of 2 or more");
  const std::string device = get_string(opts, "device", "auto");
  check_device_name(device);
  auto* job = new WorkerJob(env, model_config_from_js(info[0].As<Napi::Object>()), tensor_table_from_js(info[1].As<Napi::Array>()),
                            engine_options_from_js(opts), runner_options_from_js(opts), device, rank, size,
                            get_string(tp, "ncclId", ""), weights_load_from_js(opts));
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), nccl_unique_id()); }

}  // namespace

TpLoad tp_load_from_js(const Napi::Object& options) {
  TpLoad tp;
  if (!options.Has("tensorParallel") || options.Get("tensorParallel").IsUndefined() || options.Get("tensorParallel").IsNull())
    return tp;
  if (!options.Get("tensorParallel").IsObject()) throw Napi::TypeError::New(options.Env(), "tensorParallel must be an object");
  Napi::Object o = options.Get("tensorParallel").As<Napi::Object>();
  tp.size = int(get_number(o, "size", 0));
  tp.nccl_id = get_string(o, "ncclId", "");
  if (o.Has("rankTensors") && o.Get("rankTensors").IsArray()) {
    Napi::Array a = o.Get("rankTensors").As<Napi::Array>();
    for (uint32_t r = 0; r < a.Length(); r++) {
      if (!a.Get(r).IsArray()) throw Napi::TypeError::New(options.Env(), "tensorParallel.rankTensors must hold one tensor table per rank");
      tp.rank_tables.push_back(tensor_table_from_js(a.Get(r).As<Napi::Array>()));
    }
  }
  if (tp.size < 1) throw Napi::TypeError::New(options.Env(), "tensorParallel.size must be a positive rank count");
  if (tp.nccl_id.empty() == tp.rank_tables.empty())
    throw Napi::TypeError::New(options.Env(), "tensorParallel needs either ncclId (ranks in their own processes) or rankTensors (all ranks here)");
  if (!tp.rank_tables.empty() && int(tp.rank_tables.size()) != tp.size)
    throw Napi::TypeError::New(options.Env(), "tensorParallel.rankTensors must hold size tables");
  return tp;
}

ModelConfig tp_rank0_config(const ModelConfig& full, const TpLoad& tp) {
  return tp.size > 0 ? shard_config(full, tp_shard(full, 0, tp.size)) : full;
}

std::unique_ptr<ModelRunner> make_tp_leader_runner(TpLoad& tp, const std::string& device, const ModelConfig& cfg,
                                                   std::shared_ptr<TensorStore> store, const CpuRunnerOptions& ropts,
                                                   const EngineOptions& eopts, ResolvedEngineOptions& ro,
                                                   const WeightsLoad& weights, WeightsReport& report) {
  if (!tp.rank_tables.empty()) {
    if (device == "cuda") throw Error("a tensor-parallel engine with every rank in one process runs on the CPU");
    std::vector<std::shared_ptr<TensorStore>> stores;
    for (auto& t : tp.rank_tables) {
      stores.push_back(std::make_shared<TensorStore>(std::move(t), weights));
      report.add(stores.back()->weights_report());
    }
    return make_in_process_tp(cfg, std::move(stores), ropts);
  }
  auto group = std::make_unique<NcclGroup>();
  TensorParallel par;
  par.shard = tp_shard(cfg, 0, tp.size);
  group->comm = make_nccl_collective(tp.nccl_id, 0, tp.size, 0);
  par.comm = group->comm.get();
  std::unique_ptr<ModelRunner> inner;
  try {
    inner = make_runner_for_device(device, cfg, std::move(store), ropts, eopts, ro, par);
  } catch (...) {
    par.comm->abort();
    throw;
  }
  Collective* comm = par.comm;
  return make_tp_leader(std::move(inner), comm, std::move(group));
}

void RegisterTensorParallel(Napi::Env env, Napi::Object exports) {
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId, "ncclUniqueId"));
  exports.Set("runTensorParallelWorker", Napi::Function::New(env, RunTensorParallelWorker, "runTensorParallelWorker"));
}

}  // namespace grpst::addon
