// The tensor-parallel hooks of the GPU forward pass (runtime/cuda_tp.h) over a Collective.
#include "runtime/cuda_tp.h"

#include <cuda_runtime.h>

#include <exception>

#include "grpst/collective.h"
#include "grpst/common.h"
#include "grpst/tensor_parallel.h"

namespace grpst::cuda {

namespace {

// ids of other ranks' rows become -1, which the embedding kernel turns into a zero row.
__global__ void local_ids_kernel(const int32_t* __restrict__ ids, int32_t* __restrict__ local, int T, int start, int rows) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= T) return;
  const int id = ids[t] - start;
  local[t] = id >= 0 && id < rows ? id : -1;
}

class Hooks final : public TensorParallelHooks {
 public:
  Hooks(Collective* comm, const TpShard& s, int vocab, int max_tokens, int max_logits)
      : comm_(comm), shard_(s), vocab_(vocab) {
    alloc(&ids_, size_t(max_tokens) * 4);
    alloc(&local_, size_t(max_logits) * s.vocab_rows * 4);
    alloc(&gathered_, size_t(max_logits) * vocab * 4);
  }
  ~Hooks() override {
    for (void* p : {static_cast<void*>(ids_), static_cast<void*>(local_), static_cast<void*>(gathered_)})
      if (p) cudaFree(p);
  }

  Status embed(const int32_t* ids, const bf16* table, bf16* out, int T, int H, const Exec& ex) override {
    local_ids_kernel<<<(T + 127) / 128, 128, 0, ex.stream>>>(ids, ids_, T, shard_.vocab_start, shard_.vocab_rows);
    GRPST_CUDA_CHECK("tensor parallel embedding", cudaGetLastError());
    GRPST_TRY(embedding(ids_, table, out, T, H, shard_.vocab_rows, ex));
    return collective("embedding all-reduce", [&] { comm_->all_reduce_sum(out, size_t(T) * H, CollDType::BF16, ex.stream); });
  }

  bool keeps_residual() const override { return shard_.rank == 0; }

  Status reduce(bf16* h, int T, int H, const Exec& ex) override {
    return collective("all-reduce", [&] { comm_->all_reduce_sum(h, size_t(T) * H, CollDType::BF16, ex.stream); });
  }

  float* local_logits() override { return local_; }

  Status gather_logits(float* logits, int L, const Exec& ex) override {
    const size_t Vl = size_t(shard_.vocab_rows);
    GRPST_TRY(collective("logits all-gather", [&] { comm_->all_gather(local_, gathered_, size_t(L) * Vl, CollDType::F32, ex.stream); }));
    // gathered is [rank][row][V/N]; logits rows are [V] with rank n's slice at n * V/N.
    for (int n = 0; n < shard_.size; ++n)
      GRPST_CUDA_CHECK("logits all-gather", cudaMemcpy2DAsync(logits + n * Vl, size_t(vocab_) * 4, gathered_ + n * size_t(L) * Vl,
                                                              Vl * 4, Vl * 4, L, cudaMemcpyDeviceToDevice, ex.stream));
    return ok_status();
  }

 private:
  template <typename T>
  void alloc(T** p, size_t bytes) {
    if (cudaMalloc(reinterpret_cast<void**>(p), bytes) != cudaSuccess) {
      cudaGetLastError();
      throw Error("CUDA backend: cudaMalloc of the tensor-parallel buffers failed (" + std::to_string(bytes) + " bytes)");
    }
  }
  template <typename F>
  Status collective(const char* op, F&& f) {
    try {
      f();
      return ok_status();
    } catch (const std::exception& e) {
      return invalid(op, e.what());
    }
  }

  Collective* comm_;
  TpShard shard_;
  int vocab_;
  int32_t* ids_ = nullptr;    // [max_tokens] this rank's row of each token, or -1
  float* local_ = nullptr;    // [max_logits, V/N]
  float* gathered_ = nullptr; // [N, max_logits, V/N]
};

}  // namespace

std::unique_ptr<TensorParallelHooks> make_tensor_parallel_hooks(Collective* comm, const TpShard& shard, int vocab,
                                                                int max_tokens, int max_logits) {
  if (!comm || !comm->on_device()) throw Error("CUDA backend: tensor parallelism on the GPU needs a device group (NCCL)");
  return std::make_unique<Hooks>(comm, shard, vocab, max_tokens, max_logits);
}

}  // namespace grpst::cuda
