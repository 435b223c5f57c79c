// A kernel timeline of any CUDA program, without Nsight Systems (not installed on the GPU
// machine): an injection library that CUDA loads at its initialisation and that records every
// kernel through CUPTI's activity API, graph replays included, with the GPU's own start and end
// timestamps (under programmatic dependent launch a kernel may start before its predecessor ends).
//   CUDA_INJECTION64_PATH=libgrpst_timeline.so GRPST_TIMELINE_OUT=kernels.csv PROGRAM ...
// Writes one CSV line per kernel: start_ns,end_ns,graph_id,correlation_id,stream_id,grid,block,name
// (correlation_id is shared by every kernel of one cudaGraphLaunch). scripts/gpu/timeline_summary.py
// turns it into a decode step's time per kernel. Built by scripts/gpu/pack.sh where CUPTI's
// headers are found.
#include <cupti.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace {

FILE* g_out = nullptr;
std::mutex g_mutex;
constexpr size_t kBufferBytes = size_t(8) << 20;

void report(const char* what, CUptiResult r) {
  if (r == CUPTI_SUCCESS) return;
  const char* msg = nullptr;
  cuptiGetResultString(r, &msg);
  std::fprintf(stderr, "grpst timeline: %s: %s\n", what, msg ? msg : "unknown CUPTI error");
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(g_mutex);
  CUpti_Activity* rec = nullptr;
  while (g_out && cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    std::fprintf(g_out, "%llu,%llu,%u,%u,%u,%d,%d,%s\n", static_cast<unsigned long long>(k->start),
                 static_cast<unsigned long long>(k->end), k->graphId, k->correlationId, k->streamId,
                 k->gridX * k->gridY * k->gridZ, k->blockX * k->blockY * k->blockZ, k->name ? k->name : "?");
  }
  size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped) == CUPTI_SUCCESS && dropped)
    std::fprintf(stderr, "grpst timeline: %zu records dropped\n", dropped);
  std::free(buffer);
}

void finish() {
  report("flush", cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_out) std::fclose(g_out);
  g_out = nullptr;
}

}  // namespace

// Called by the CUDA driver when CUDA_INJECTION64_PATH names this library.
extern "C" int InitializeInjection() {
  const char* path = std::getenv("GRPST_TIMELINE_OUT");
  g_out = std::fopen(path ? path : "kernels.csv", "w");
  if (!g_out) {
    std::fprintf(stderr, "grpst timeline: cannot write %s\n", path ? path : "kernels.csv");
    return 0;
  }
  std::fprintf(g_out, "start_ns,end_ns,graph_id,correlation_id,stream_id,grid,block,name\n");
  report("register callbacks", cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed));
  report("enable kernel records", cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL));
  std::atexit(finish);
  return 1;
}
