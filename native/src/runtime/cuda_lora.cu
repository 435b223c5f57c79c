#include "runtime/cuda_lora.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "grpst/common.h"

namespace grpst {

namespace cu = grpst::cuda;

// The kernels read the CPU runner's layouts and target numbers as they are.
static_assert(kLoraCols == cu::kLoraBlockCols, "B's blocks of outputs");
static_assert(kLoraTargets == cu::kLoraTargetCount && int(LoraTarget::Down) == cu::kLoraDown &&
                  int(LoraTarget::Gate) == cu::kLoraGate && int(LoraTarget::O) == cu::kLoraO,
              "LoRA target numbers");

namespace {
void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw Error("CUDA backend: " + what + ": " + cudaGetErrorString(e));
}
size_t align256(size_t n) { return (n + 255) / 256 * 256; }
}  // namespace

CudaLoraAdapters::~CudaLoraAdapters() {
  for (Resident& r : resident_) cudaFree(r.mem);
  if (host_rows_) cudaFreeHost(host_rows_);
  if (dev_rows_) cudaFree(dev_rows_);
  if (t_) cudaFree(t_);
}

bool CudaLoraAdapters::prepare(const std::vector<const LoraAdapter*>& rows, cudaStream_t stream) {
  if (int(rows.size()) > max_tokens_) throw Error("CUDA backend: more LoRA rows than a step holds");
  if (!host_rows_) {
    check(cudaMallocHost(reinterpret_cast<void**>(&host_rows_), size_t(max_tokens_) * sizeof(void*)), "cudaMallocHost LoRA rows");
    check(cudaMalloc(reinterpret_cast<void**>(&dev_rows_), size_t(max_tokens_) * sizeof(void*)), "cudaMalloc LoRA rows");
  }
  ++step_;
  // Mark this step's adapters first, so an upload below never evicts one of them. (Rows of one
  // sequence, and often neighbours, share an adapter: each run of them is looked up once.)
  const LoraAdapter* last = nullptr;
  for (const LoraAdapter* a : rows)
    if (a && a != last) {
      last = a;
      for (Resident& r : resident_)
        if (r.key == a->cache_key) r.last_step = step_;
    }
  int rank_needed = 0;
  last = nullptr;
  const Resident* last_resident = nullptr;
  for (size_t m = 0; m < rows.size(); ++m) {
    const LoraAdapter* a = rows[m];
    if (a && a != last) {
      last = a;
      last_resident = &resident(*a);
      rank_needed = std::max(rank_needed, last_resident->max_rank);
    }
    host_rows_[m] = a ? last_resident->table : nullptr;
  }
  bool moved = false;
  if (rank_needed > max_rank_) {
    // A higher rank than the scratch holds: grow it (by steps of 64, so it rarely moves).
    const int rank = (rank_needed + 63) / 64 * 64;
    if (t_) check(cudaFree(t_), "cudaFree LoRA scratch");
    t_ = nullptr;
    max_rank_ = 0;
    check(cudaMalloc(reinterpret_cast<void**>(&t_), size_t(max_tokens_) * 3 * size_t(rank) * 4),
          "cudaMalloc LoRA scratch (lower kv_cache_free_gpu_mem_fraction to leave room for adapters)");
    max_rank_ = rank;
    moved = true;
  }
  check(cudaMemcpyAsync(dev_rows_, host_rows_, rows.size() * sizeof(void*), cudaMemcpyHostToDevice, stream),
        "copy LoRA rows");
  return moved;
}

const CudaLoraAdapters::Resident& CudaLoraAdapters::resident(const LoraAdapter& a) {
  for (Resident& r : resident_)
    if (r.key == a.cache_key) return r;
  if (int(resident_.size()) >= kMaxResidentLoras) evict_one();
  Resident r;
  r.key = a.cache_key;
  r.last_step = step_;
  upload(a, &r);
  resident_.push_back(r);
  return resident_.back();
}

void CudaLoraAdapters::evict_one() {
  // The least recently used adapter that this step does not run (none: keep them all, past the cap).
  auto victim = resident_.end();
  for (auto it = resident_.begin(); it != resident_.end(); ++it)
    if (it->last_step != step_ && (victim == resident_.end() || it->last_step < victim->last_step)) victim = it;
  if (victim == resident_.end()) return;
  cudaFree(victim->mem);
  resident_.erase(victim);
}

void CudaLoraAdapters::upload(const LoraAdapter& a, Resident* r) {
  const int L = a.shape.num_layers;
  const size_t table_bytes = align256(size_t(L) * cu::kLoraTargetCount * sizeof(cu::LoraProj));
  size_t total = table_bytes;
  for (int l = 0; l < L; ++l)
    for (int t = 0; t < kLoraTargets; ++t)
      if (const LoraDelta* d = a.delta(l, LoraTarget(t))) total += align256(d->a16.size() * 2) + align256(d->bt16.size() * 2);
  std::vector<uint8_t> host(total, 0);
  void* mem = nullptr;
  const cudaError_t e = cudaMalloc(&mem, total);
  if (e != cudaSuccess) {
    cudaGetLastError();  // (not sticky: clear it)
    throw Error("CUDA backend: no GPU memory left for a LoRA adapter of " + std::to_string(total >> 20) +
                " MiB; lower kv_cache_free_gpu_mem_fraction (or max_tokens_in_paged_kv_cache) to leave room for adapters");
  }
  auto* table = reinterpret_cast<cu::LoraProj*>(host.data());
  size_t at = table_bytes;
  int max_rank = 0;
  for (int l = 0; l < L; ++l) {
    for (int t = 0; t < kLoraTargets; ++t) {
      const LoraDelta* d = a.delta(l, LoraTarget(t));
      if (!d) continue;
      cu::LoraProj& p = table[size_t(l) * cu::kLoraTargetCount + size_t(t)];
      p.rank = d->rank;
      p.scale = d->scale;
      std::memcpy(host.data() + at, d->a16.data(), d->a16.size() * 2);
      p.a = reinterpret_cast<const __nv_bfloat16*>(static_cast<uint8_t*>(mem) + at);
      at += align256(d->a16.size() * 2);
      std::memcpy(host.data() + at, d->bt16.data(), d->bt16.size() * 2);
      p.bt = reinterpret_cast<const __nv_bfloat16*>(static_cast<uint8_t*>(mem) + at);
      at += align256(d->bt16.size() * 2);
      max_rank = std::max(max_rank, d->rank);
    }
  }
  const cudaError_t ce = cudaMemcpy(mem, host.data(), total, cudaMemcpyHostToDevice);
  if (ce != cudaSuccess) {
    cudaFree(mem);
    check(ce, "upload a LoRA adapter");
  }
  r->mem = mem;
  r->table = static_cast<const cu::LoraProj*>(mem);
  r->max_rank = max_rank;
}

}  // namespace grpst
