// What a kernel boundary costs in a decode step, and what a flag handoff would save.
//
// A decode step is a chain of ~5 kernels a layer (qkv, attention, o_proj, gate_up, down_proj),
// each launched under programmatic dependent launch (PDL): its blocks start early, load their
// weights, then wait in griddepcontrol.wait until the whole previous grid has finished and its
// writes are visible. This measures a chain of such links captured in a CUDA graph, three ways:
//   plain  stream order, no PDL;
//   pdl    PDL, griddepcontrol.wait (what the runtime does);
//   flag   PDL, but the wait is a counter the previous kernel's blocks bump after their writes
//          (release), which one thread of each block spins on (acquire): no wait for the grid's end.
// Each link: B blocks of 256 threads; before the wait each thread streams V 16-byte weight pieces
// (independent data, as a GEMV's early round), after it every block reads 256 values of the
// previous link's output (L2), takes their minimum and writes min + 1 to its 16 outputs. After
// the chain, every output must equal the number of links run: a stale read would show as less.
//
// Build and run (on the GPU machine): nvcc -O3 -arch=sm_90a -o /tmp/kb kernel_boundary.cu && /tmp/kb
// (scripts/gpu/run.sh boundary does both).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x)                                                                         \
  do {                                                                                   \
    cudaError_t e_ = (x);                                                                \
    if (e_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                      \
    }                                                                                    \
  } while (0)

namespace {

constexpr int kThreads = 256;
constexpr int kOut = 4096;  // floats a link writes (16 per block, blocks past 256 write none)
enum Mode { kPlain = 0, kPdl = 1, kFlag = 2 };

struct Link {
  const float* in;          // the previous link's output [kOut]
  float* out;               // this link's output [kOut]
  const uint4* weights;     // this link's own weights: B * kThreads * V pieces
  int v;                    // pieces per thread before the wait
  int mode;
  const int* prev_counter;  // flag: bumped once per block of the previous link
  int prev_blocks;
  int* my_counter;
  int* stale_counter;       // flag: the counter two links back (nobody reads it now): reset to 0
  unsigned* sink;           // keeps the weight loads alive
};

__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}
__device__ __forceinline__ int ld_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void red_release_add(int* p, int v) {
  asm volatile("red.release.gpu.global.add.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__global__ void __launch_bounds__(kThreads) link_kernel(Link a) {
  __shared__ float part[kThreads / 32];
  // The weights: independent of the previous link, loaded before the wait (as a GEMV's first round).
  uint32_t x = 0;
  uint4 w[16];
  const int v = a.v < 16 ? a.v : 16;
#pragma unroll
  for (int i = 0; i < 16; ++i)
    if (i < v) w[i] = ld_stream(a.weights + (static_cast<size_t>(i) * gridDim.x + blockIdx.x) * kThreads + threadIdx.x);
  if (a.mode == kPdl) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
  } else if (a.mode == kFlag) {
    if (threadIdx.x == 0)
      while (ld_acquire(a.prev_counter) < a.prev_blocks) __nanosleep(20);
    __syncthreads();
  }
  if (a.mode != kPlain) asm volatile("griddepcontrol.launch_dependents;");
  if (a.mode == kFlag && a.stale_counter && blockIdx.x == 0 && threadIdx.x == 0) *a.stale_counter = 0;
#pragma unroll
  for (int i = 0; i < 16; ++i)
    if (i < v) x ^= w[i].x ^ w[i].y ^ w[i].z ^ w[i].w;
  // The previous link's output, through the L2 (another SM wrote it).
  const int written = gridDim.x * 16 < kOut ? gridDim.x * 16 : kOut;  // what the previous link wrote
  float m = __ldcg(a.in + (blockIdx.x * 16 + threadIdx.x * 17) % written);
  for (int o = 16; o > 0; o >>= 1) m = fminf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x < 16) {
    float b = part[0];
    for (int i = 1; i < kThreads / 32; ++i) b = fminf(b, part[i]);
    const int j = blockIdx.x * 16 + threadIdx.x;
    if (j < kOut) a.out[j] = b + 1.f;
  }
  if (x == 0x9e3779b9u) *a.sink = x;  // (never, in practice: the loads must not be dropped)
  if (a.mode == kFlag) {
    __syncthreads();  // every thread's store is issued before the block's release below
    if (threadIdx.x == 0) {
      __threadfence();
      red_release_add(a.my_counter, 1);
    }
  }
}

__global__ void reset_kernel(int* counters, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) counters[i] = 0;
}

struct Result {
  double us_per_link;
  bool ok;
};

Result run_chain(int mode, int blocks, int v, int links, int replays) {
  const size_t pieces = static_cast<size_t>(blocks) * kThreads * (v > 0 ? v : 1);
  uint4* weights;
  float* bufs;
  int* counters;
  unsigned* sink;
  CHECK(cudaMalloc(&weights, pieces * 16 * links));
  CHECK(cudaMemset(weights, 1, pieces * 16 * links));
  CHECK(cudaMalloc(&bufs, 2 * kOut * sizeof(float)));
  CHECK(cudaMemset(bufs, 0, 2 * kOut * sizeof(float)));
  CHECK(cudaMalloc(&counters, (links + 1) * sizeof(int)));
  CHECK(cudaMemset(counters, 0, (links + 1) * sizeof(int)));
  CHECK(cudaMalloc(&sink, sizeof(unsigned)));
  // counters[0]: the "link before the first", full from the start
  std::vector<int> first(1, blocks);
  CHECK(cudaMemcpy(counters, first.data(), sizeof(int), cudaMemcpyHostToDevice));

  cudaStream_t s;
  CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaGraph_t graph;
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < links; ++i) {
    Link a;
    a.in = bufs + (i % 2) * kOut;
    a.out = bufs + ((i + 1) % 2) * kOut;
    a.weights = weights + pieces * i;
    a.v = v;
    a.mode = mode;
    a.prev_counter = counters + i;
    a.prev_blocks = blocks;
    a.my_counter = counters + i + 1;
    a.stale_counter = i >= 2 ? counters + i - 1 : nullptr;  // link i - 2's counter (i - 1 has passed it)
    a.sink = sink;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(kThreads);
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = mode == kPlain ? 0 : 1;
    CHECK(cudaLaunchKernelEx(&cfg, link_kernel, a));
  }
  // The last counters back to their start for the next replay (counter 0 stays full).
  reset_kernel<<<1, 256, 0, s>>>(counters + 1, links);
  CHECK(cudaStreamEndCapture(s, &graph));
  cudaGraphExec_t exec;
  CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int r = 0; r < 3; ++r) CHECK(cudaGraphLaunch(exec, s));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  CHECK(cudaEventRecord(e0, s));
  for (int r = 0; r < replays; ++r) CHECK(cudaGraphLaunch(exec, s));
  CHECK(cudaEventRecord(e1, s));
  CHECK(cudaStreamSynchronize(s));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, e0, e1));
  // Every output went up by one per link run (links is even: the result is in bufs[0]).
  std::vector<float> host(kOut);
  CHECK(cudaMemcpy(host.data(), bufs + (links % 2) * kOut, kOut * sizeof(float), cudaMemcpyDeviceToHost));
  const float want = static_cast<float>(links) * (replays + 3);
  bool ok = true;
  const int written = blocks * 16 < kOut ? blocks * 16 : kOut;
  for (int j = 0; j < written; ++j) ok = ok && host[j] == want;
  CHECK(cudaGraphExecDestroy(exec));
  CHECK(cudaGraphDestroy(graph));
  CHECK(cudaStreamDestroy(s));
  CHECK(cudaFree(weights));
  CHECK(cudaFree(bufs));
  CHECK(cudaFree(counters));
  CHECK(cudaFree(sink));
  return {ms * 1000.0 / (static_cast<double>(replays) * links), ok};
}

}  // namespace

int main() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("kernel boundary: %s, %d SMs; a chain of 64 links in a CUDA graph, us per link (median of 5 runs)\n",
              prop.name, sms);
  std::printf("%-8s %-7s %-28s %9s %9s %9s  %s\n", "blocks", "pieces", "weights before the wait", "plain", "pdl",
              "flag", "pdl - flag");
  const int links = 64, replays = 40;
  const int shapes[][2] = {{2 * sms, 0}, {2 * sms, 8}, {2 * sms, 16}, {32, 0}, {32, 8}};
  bool all_ok = true;
  for (const auto& sh : shapes) {
    const int blocks = sh[0], v = sh[1];
    double med[3];
    for (int mode = 0; mode < 3; ++mode) {
      std::vector<double> t;
      for (int rep = 0; rep < 5; ++rep) {
        const Result r = run_chain(mode, blocks, v, links, replays);
        all_ok = all_ok && r.ok;
        if (!r.ok) std::printf("  MISMATCH: mode %d blocks %d pieces %d read a stale value\n", mode, blocks, v);
        t.push_back(r.us_per_link);
      }
      std::sort(t.begin(), t.end());
      med[mode] = t[2];
    }
    char wdesc[64];
    std::snprintf(wdesc, sizeof wdesc, "%.1f MB (%d KB a block)", blocks * kThreads * v * 16.0 / 1e6, kThreads * v * 16 / 1024);
    std::printf("%-8d %-7d %-28s %9.2f %9.2f %9.2f  %+.2f\n", blocks, v, wdesc, med[0], med[1], med[2], med[1] - med[2]);
  }
  std::printf("%s\n", all_ok ? "every chain's outputs checked: no stale reads" : "STALE READS: see above");
  return all_ok ? 0 : 1;
}
