// Tiled tensor-core GEMM for weight-only quantized weights (int4_awq, int8_wo) at 9-64 tokens
// (and fewer where the streaming GEMV cannot stage x):
// y[M,N] = x[M,K] . W[N,K]^T with W decoded to bf16 in registers, never written out.
//
// The skinny kernel stages all M rows of x in every block for 16-32 weight rows, so at 64 tokens
// x crosses the L2 four to eight times per weight byte. Here a block takes 64-256 weight rows
// (WARPS warps x TW 16-row tiles each; 64 or 128 by default) and, where that leaves too few blocks
// to fill the GPU, a slice of K (split-K). Each block runs a kStages-deep cp.async ring over
// 64-column steps of K:
//   stage = weight tiles [TILES][kLaneBytes / 16 halves][32 lanes][16 B] (the packed fragments)
//         + int4 group scales / zeros [TILES][4 entries][2][16] (bf16)
//         + x rows [8J][64] bf16 (rows past M and columns past K zero-filled), 144-byte stride
// and per step each warp decodes its tiles' A fragments once and multiplies them with every
// 8-token column of x (ldmatrix.x4 gives two columns). Partial sums of the K slices go to an fp32
// scratch, [slice][column of blocks][rows][8J]; the last block of each column of blocks to arrive
// (a counter per column, reset by that block) adds them in slice order, so the result does not
// depend on timing, and runs the epilogue (channel scale, store / residual add / SwiGLU).
// On a GPU of compute capability 9.0, 17-64 tokens take a warp-specialized kernel fed by the
// tensor memory accelerator (linear_wo_ws.cuh), or where it cannot run (int4 groups under 64
// columns) the same ring on wgmma (linear_wo_wgmma.cuh); the parts they share are in
// linear_wo_tiled_parts.cuh.
#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "env_switch.h"
#include "linear_wo_tiled_parts.cuh"
#include "linear_wo_wgmma.cuh"
#include "linear_wo_ws.cuh"

namespace grpst::cuda {
namespace {

constexpr int kXStride = 144;  // bytes per staged x row: 64 bf16 + 16 (rows fall on different banks)

// c += a . b (m16n8k16 bf16, fp32 accumulators), without `volatile`: the product touches only
// registers, so the compiler may interleave it with the next step's loads and decoding (the
// shared mma_bf16 keeps its order for the attention kernels tuned around it).
__device__ __forceinline__ void mma_bf16_sched(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// PerStep: the int4 scales' copies addressed per step (stage_scales_per_step), at up to 8 rows.
template <class Dec, int J, int WARPS, int TW, bool PerStep = false>
struct Shape {
  static constexpr bool kScalesPerStep = PerStep;
  static constexpr int kThreads = WARPS * 32, kMmaWarps = WARPS;
  static constexpr int kTiles = WARPS * TW, kRows = 16 * kTiles, kXRows = 8 * J;
  static constexpr int kWBytes = kTiles * 32 * Dec::kLaneBytes;
  static constexpr int kSBytes = Dec::kScaled ? kTiles * kScaleEntries * 64 : 0;
  static constexpr int kStageBytes = kWBytes + kSBytes + kXRows * kXStride;
  // x's chunk c (8 columns) of token r: rows of kXStride bytes, padded off each other's banks
  __device__ static int x_offset(int r, int c) { return kWBytes + kSBytes + r * kXStride + c * 16; }
  static constexpr int kRedStride = kXRows + 4;  // fp32 per row of the reduction (16-byte rows)
  static constexpr int kRedBytes = kRows * kRedStride * 4;
  static constexpr int kRing = kStages, kAhead = kStages - 1;
  static constexpr int kSmem = kRing * kStageBytes > kRedBytes ? kRing * kStageBytes : kRedBytes;
};

template <class Dec, int J, int WARPS, int TW, bool PerStep = false>
__global__ void __launch_bounds__(WARPS * 32) linear_wo_tiled_kernel(const bf16* __restrict__ x, Weight W,
                                                                      LinearOut out, int M, int splits,
                                                                      float* partial, int* counters) {
  using S = Shape<Dec, J, WARPS, TW, PerStep>;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ bool is_last;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const BlockWork<Dec, S> work(W, x, M, splits);
  work.prime_weights(smem);
  griddep_wait();
  work.prime_activations(smem);

  float acc[TW][J][4];
  zero_sums(acc);

  for (int it = 0; it < work.steps; ++it) {
    cp_async_wait<S::kAhead - 1>();
    __syncthreads();  // stage `it` landed for every thread; stage it - 1 is consumed
    work.refill(smem, it + S::kAhead);
    const uint8_t* st = smem + (it % S::kRing) * S::kStageBytes;
    typename Dec::Raw raw[TW];
#pragma unroll
    for (int t = 0; t < TW; ++t) raw[t] = Dec::read(st + (warp * TW + t) * 32 * Dec::kLaneBytes + lane * 16);
    // ldmatrix.x4 at row jj*16 + lane's row: tokens jj*16 + {0-7, 8-15} x columns {0-7, 8-15}
    const uint8_t* xs = st + S::kWBytes + S::kSBytes + (((lane >> 4) << 3) + (lane & 7)) * kXStride +
                        ((lane >> 3) & 1) * 16;
    // x fragments one k16 step ahead of the products that use them
    uint32_t b[2][J / 2][4];
#pragma unroll
    for (int jj = 0; jj < J / 2; ++jj) ldmatrix_x4(b[0][jj], xs + jj * 16 * kXStride);
    typename Dec::Scales sc[TW];
#pragma unroll
    for (int step = 0; step < 4; ++step) {
      if (step < 3)
#pragma unroll
        for (int jj = 0; jj < J / 2; ++jj) ldmatrix_x4(b[(step + 1) & 1][jj], xs + jj * 16 * kXStride + (step + 1) * 32);
      // one group per 64 columns or more: its scales once per step of K
      if (step == 0 || work.G < 64)
#pragma unroll
        for (int t = 0; t < TW; ++t) sc[t] = work.scales(st, warp * TW + t, step, g);
      uint32_t a[TW][4];
#pragma unroll
      for (int t = 0; t < TW; ++t) Dec::frag(raw[t], step, sc[t], a[t]);
#pragma unroll
      for (int jj = 0; jj < J / 2; ++jj)
#pragma unroll
        for (int t = 0; t < TW; ++t) {
          mma_bf16_sched(acc[t][2 * jj], a[t], b[step & 1][jj][0], b[step & 1][jj][1]);
          mma_bf16_sched(acc[t][2 * jj + 1], a[t], b[step & 1][jj][2], b[step & 1][jj][3]);
        }
    }
  }
  cp_async_wait<0>();
  griddep_launch_dependents();
  __syncthreads();  // the ring is free: it becomes the reduction buffer

  finish_block<Dec, S, TW, J>(smem, acc, W, out, M, splits, partial, counters, is_last);
}

// Block shape and split for one call. Forced by GRPST_CUDA_WO_TILED_CONFIG="rows,splits" (rows 64,
// 128 or 256; splits 0 = chosen) for the kernel tests and the benchmark sweep.
struct Plan {
  int rows = 128, splits = 1;
  bool wgmma = false;  // the warpgroup kernel (linear_wo_wgmma.cuh) rather than the mma.sync one
  bool overlap = false;  // that kernel with its steps overlapped (int4 at 17-32 tokens)
  int pipe = 0;  // that kernel pipelined (linear_wo_wgmma.cuh): 1 by steps (two A buffers), 2 by half steps
  int stream_k = 0;  // pipe 3 under stream-K (linear_wo_ws_streamk.cuh): its blocks (splits unused); 0: by slices
};
// Blocks of 64 and of 128 rows that fit on one SM at 33-64 tokens (0: unknown).
struct Residency {
  int rows64 = 0, rows128 = 0;
};

// 33-64 tokens: the shape whose blocks fill the GPU's resident slots most evenly (blocks over
// whole waves of slots), among those within 5% of the best the one with the fewest waves, then
// the wider blocks (fewer x reads). Measured on an H200 at 64 tokens (docs/benchmarks-gpu-passes.md,
// "the tiled weight-only GEMM fills whole waves"): int4 qkv 128 rows x 8 slices 25.6 us against
// 31.2 for the rule below, gate_up 128 x 2 61.5 against 75.5 (a wave and a half of 3 slices).
Plan choose_by_waves(const Weight& w, int nkb, const Residency& res, int num_sms) {
  const int max_splits = std::max(1, std::min(kMaxSplits, nkb / 8));
  // Visits every (rows, splits) with its fill (blocks over whole waves of slots) and waves.
  const auto each = [&](auto&& visit) {
    for (const int rows : {64, 128}) {
      const int slots = (rows == 64 ? res.rows64 : res.rows128) * num_sms;
      if (slots <= 0) continue;
      for (int splits = 1; splits <= max_splits; ++splits) {
        const int blocks = ceil_div(w.N, rows) * splits, waves = ceil_div(blocks, slots);
        visit(Plan{rows, splits}, static_cast<double>(blocks) / (static_cast<double>(waves) * slots), waves);
      }
    }
  };
  double best_fill = 0;
  each([&](const Plan&, double fill, int) { best_fill = std::max(best_fill, fill); });
  Plan pick;
  int pick_waves = 0;
  each([&](const Plan& p, double fill, int waves) {
    if (fill < 0.95 * best_fill) return;
    if (pick_waves == 0 || waves < pick_waves || (waves == pick_waves && p.rows > pick.rows)) {
      pick = p;
      pick_waves = waves;
    }
  });
  return pick;
}

// int8_wo on wgmma at 33-64 tokens: 64-row blocks, as many K slices as keep every block in one wave
// of resident slots (where the rows alone fit in one). Measured on an H200 at 64 tokens, every
// shape swept: qkv 64 x 4 28.2 us against 32.2 for choose_by_waves' 128 x 8, gate_up 64 x 1 71.9
// against 78.1 (128 x 2); o_proj and down_proj 64 x 8 either way. int4 keeps choose_by_waves (its
// gate_up 128 x 2 45.3 against 51.5 at 64 x 1). GRPST_CUDA_WO_TILED_ONE_WAVE=0: choose_by_waves.
bool one_wave_fits(const Weight& w, const Residency& res, int num_sms) {
  return res.rows64 > 0 && ceil_div(w.N, 64) <= res.rows64 * num_sms && env_int("GRPST_CUDA_WO_TILED_ONE_WAVE", 1) != 0;
}
Plan choose_one_wave(const Weight& w, int nkb, const Residency& res, int num_sms) {
  const int max_splits = std::max(1, std::min(kMaxSplits, nkb / 8));
  Plan p;
  p.rows = 64;
  p.splits = std::clamp(res.rows64 * num_sms / ceil_div(w.N, 64), 1, max_splits);
  return p;
}

// At most kMaxSplits slices, and as many as the scratch holds partial sums and counters for.
void cap_splits(Plan& p, const Weight& w, int M, const SplitScratch& sc) {
  p.splits = std::min(p.splits, kMaxSplits);
  if (p.splits > 1) {
    const int blocks = ceil_div(w.N, p.rows);
    const bool usable = sc.partial && sc.counters && blocks <= sc.counter_count;
    const size_t per_split = static_cast<size_t>(blocks) * p.rows * (M <= 16 ? 16 : M <= 32 ? 32 : 64);
    const size_t cap = usable ? sc.partial_floats / per_split : 1;
    p.splits = static_cast<int>(std::max<size_t>(1, std::min<size_t>(cap, p.splits)));
  }
}

// GRPST_CUDA_WO_TILED_CONFIG="rows,splits": the block rows and K slices forced (0: chosen).
void forced_config(int& rows, int& splits) {
  rows = splits = 0;
  if (const char* e = std::getenv("GRPST_CUDA_WO_TILED_CONFIG")) std::sscanf(e, "%d,%d", &rows, &splits);
}

Plan choose(const Weight& w, int M, const SplitScratch& sc, int num_sms, const Residency& res, bool one_wave) {
  Plan p;
  const int nkb = (w.K + 63) / 64;
  int forced_rows, forced_splits;
  forced_config(forced_rows, forced_splits);
  // Up to 32 tokens: 64-row blocks (128 for the widest matrices), K split until about six blocks
  // per SM (three of 128 rows), each slice at least 8 steps of K: on an H200 the kernel is bound
  // by latency (ncu: 12-19% achieved occupancy, DRAM and SM throughput under a third), so more
  // blocks in flight win, except for gate_up, where the wider blocks' fewer slices and x reads
  // win. The fastest shapes of the sweep (docs/benchmarks-gpu.md, 16-32 tokens): qkv, o_proj,
  // down_proj 64 rows x 8 slices; gate_up 128 x 2-4; the LM head 128 x 1. From 33 tokens the
  // blocks hold twice the x and fewer fit on an SM: whole waves decide (choose_by_waves).
  // GRPST_CUDA_WO_TILED_WAVES=0 keeps the rule above at every row count (for comparisons).
  const bool by_waves = M > 32 && res.rows64 > 0 && res.rows128 > 0 && env_int("GRPST_CUDA_WO_TILED_WAVES", 1) != 0;
  if (by_waves && one_wave && forced_rows == 0 && forced_splits == 0 && one_wave_fits(w, res, num_sms)) {
    p = choose_one_wave(w, nkb, res, num_sms);
  } else if (by_waves && forced_rows == 0 && forced_splits == 0) {
    p = choose_by_waves(w, nkb, res, num_sms);
  } else {
    p.rows = w.N >= 16384 ? 128 : 64;
    if (forced_rows == 64 || forced_rows == 128 || forced_rows == 256) p.rows = forced_rows;
    const int blocks = ceil_div(w.N, p.rows);
    p.splits = std::max(1, std::min(ceil_div((p.rows >= 128 ? 3 : 6) * num_sms, blocks), nkb / 8));
    if (forced_splits > 0) p.splits = std::min(forced_splits, nkb);
  }
  cap_splits(p, w, M, sc);
  return p;
}

// One launch of a tiled kernel of shape S: a block per S::kRows weight rows and K slice.
template <class S, class Kernel>
Status launch_shape(Kernel kernel, const bf16* x, const Weight& w, const LinearOut& out, int M, int splits,
                    const SplitScratch& sc, const Exec& ex) {
  GRPST_TRY(allow_smem("linear_wo_tiled", kernel, S::kSmem));
  const dim3 grid(ceil_div(w.N, S::kRows), splits);
  return launch("linear_wo_tiled", kernel, grid, dim3(S::kThreads), S::kSmem, ex, x, w, out, M, splits, sc.partial,
                sc.counters);
}
template <class Dec, int J, int WARPS, int TW, bool PerStep = false>
Status launch_tiled(const bf16* x, const Weight& w, const LinearOut& out, int M, int splits, const SplitScratch& sc,
                    const Exec& ex) {
  return launch_shape<Shape<Dec, J, WARPS, TW, PerStep>>(linear_wo_tiled_kernel<Dec, J, WARPS, TW, PerStep>, x, w, out,
                                                         M, splits, sc, ex);
}
template <class Dec, int J, int TW, bool Overlap>
Status launch_wgmma(const bf16* x, const Weight& w, const LinearOut& out, int M, int splits, const SplitScratch& sc,
                    const Exec& ex) {
  return launch_shape<WgShape<Dec, J, TW, Overlap>>(linear_wo_wgmma_kernel<Dec, J, TW, Overlap>, x, w, out, M, splits,
                                                    sc, ex);
}
template <class Dec, int J>
Status launch_ws(const bf16* x, const Weight& w, const LinearOut& out, int M, const Plan& p, const SplitScratch& sc,
                 const Exec& ex) {
  using S = WsShape<Dec, J>;
  WsMaps maps;
  GRPST_TRY((ws_maps<S, Dec>(x, M, w, &maps)));
  const auto run = [&](auto kernel, dim3 grid) -> Status {
    GRPST_TRY(allow_smem("linear_wo_tiled", kernel, S::kSmem));
    return launch("linear_wo_tiled", kernel, grid, dim3(S::kThreads), S::kSmem, ex, w, out, M, p.splits, sc.partial,
                  sc.counters, maps);
  };
  if constexpr (J <= 4) {
    if (p.stream_k > 0) return run(linear_wo_ws_kernel<Dec, J, true>, dim3(p.stream_k));
  }
  return run(linear_wo_ws_kernel<Dec, J, false>, dim3(ceil_div(w.N, S::kRows), p.splits));
}
template <class Dec, int J, int TW, bool Half>
Status launch_wgmma_pipe(const bf16* x, const Weight& w, const LinearOut& out, int M, int splits, const SplitScratch& sc,
                         const Exec& ex) {
  return launch_shape<WgShape<Dec, J, TW, true>>(linear_wo_wgmma_pipe_kernel<Dec, J, TW, Half>, x, w, out, M, splits,
                                                 sc, ex);
}

// Blocks of one kernel that fit on an SM (its shared memory, registers and threads); 0 when the
// runtime cannot say.
template <class Kernel>
int occupancy(Kernel kernel, int threads, int smem) {
  int n = 0;
  if (!allow_smem("linear_wo_tiled", kernel, smem).ok() ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, smem) != cudaSuccess) {
    cudaGetLastError();  // leave no error behind for the next launch's check
    return 0;
  }
  return n;
}
// Asked of the runtime once per shape and process (the GPUs of one machine are of one kind).
template <class Dec, int J, int WARPS, int TW>
int resident_per_sm() {
  using S = Shape<Dec, J, WARPS, TW>;
  static const int blocks = occupancy(linear_wo_tiled_kernel<Dec, J, WARPS, TW>, S::kThreads, S::kSmem);
  return blocks;
}
template <class Dec, int J, int TW>
int resident_wgmma_per_sm() {
  using S = WgShape<Dec, J, TW, false>;
  static const int blocks = occupancy(linear_wo_wgmma_kernel<Dec, J, TW, false>, S::kThreads, S::kSmem);
  return blocks;
}
template <class Dec, int J, int TW, bool Half>
int resident_wgmma_pipe_per_sm() {
  using S = WgShape<Dec, J, TW, true>;
  static const int blocks = occupancy(linear_wo_wgmma_pipe_kernel<Dec, J, TW, Half>, S::kThreads, S::kSmem);
  return blocks;
}
template <class Dec>
Residency residency_wgmma(int pipe) {
  if (pipe == 1) return {resident_wgmma_pipe_per_sm<Dec, 8, 1, false>(), resident_wgmma_pipe_per_sm<Dec, 8, 2, false>()};
  if (pipe == 2) return {resident_wgmma_pipe_per_sm<Dec, 8, 1, true>(), resident_wgmma_pipe_per_sm<Dec, 8, 2, true>()};
  return {resident_wgmma_per_sm<Dec, 8, 1>(), resident_wgmma_per_sm<Dec, 8, 2>()};
}

// Whether the wgmma kernel runs here: built with sm_90a machine code (GRPST_HAVE_SM90A, from
// the build's -gencode flags) on a GPU of compute capability 9.0, the only one that runs it
// (other GPUs JIT-compile the compute_90 PTX, in which the kernel is empty).
// GRPST_CUDA_WO_WGMMA=0 keeps the mma.sync kernel (comparisons in turns, its kernel tests).
bool wgmma_here() {
#ifdef GRPST_HAVE_SM90A
  if (env_int("GRPST_CUDA_WO_WGMMA", 1) == 0) return false;
  return gpu_runs_sm90a();
#else
  return false;
#endif
}

// The warp-specialized kernel (one 256-row block per SM): as many K slices as keep its blocks in
// one wave (each slice at least 8 steps), or one where the rows alone take more. Measured on an
// H200 at 64 tokens (docs/benchmarks-gpu-wgmma.md, every split of each 8B projection): qkv 5
// slices 22.4 us (4: 23.5, 8: 30.7), o_proj and down_proj 8 (20.4, 31.1 us), gate_up 1 (50.2 us
// against 61.9 at 4 slices over three waves). GRPST_CUDA_WO_TILED_CONFIG="rows,splits" forces the
// slices (its rows are ignored).
// Stream-K (linear_wo_ws_streamk.cuh) at 2-32 tokens where its blocks would take under 90% of the
// steps the slices' blocks take (their waves included), each at least 8 steps, one per SM: on an
// H200 the 8B model's gate_up, 96 blocks of 64 steps (qkv's 120 blocks, o_proj's and down_proj's
// 128 stay by slices). Decode steps at 512 keys, in turns: int8_wo b16 4.41 -> 4.16 ms, b32 5.18
// -> 4.93; int4 b16 3.97 -> 3.75, b32 4.69 -> 4.50. Not at 33-64 tokens, where the pieces' sums
// (64 KB per piece) cost more than the idle SMs did: b64 6.89 -> 6.94 (int8_wo), 6.37 -> 6.44.
// GRPST_CUDA_WO_WS_STREAMK: 0 never, 2 wherever it can run (more SMs than tiles, scratch enough;
// for tests), 1 (default) as above. Returns its blocks, or 0.
int ws_stream_k_blocks(const Weight& w, int M, const Plan& sliced, const SplitScratch& sc, int num_sms) {
  const int mode = env_int("GRPST_CUDA_WO_WS_STREAMK", 1);
  if (mode <= 0 || M > 32) return 0;
  const int nkb = (w.K + 63) / 64, T = ceil_div(w.N, 256);
  const long long U = static_cast<long long>(T) * nkb;
  const int B = static_cast<int>(std::min<long long>(num_sms, U / 8));
  if (B <= T || !sc.partial || !sc.counters || T > sc.counter_count) return 0;  // (a block's range within two tiles)
  if (mode == 1) {
    const int blocks = T * sliced.splits, waves = ceil_div(blocks, num_sms);
    const long long sliced_steps = static_cast<long long>(waves) * ceil_div(nkb, sliced.splits);
    if (10 * ceil_div(U, B) >= 9 * sliced_steps) return 0;
  }
  // The scratch: a slot of 256 rows x the x block's tokens per piece of every tile cut.
  int most = 1;
  for (long long t = 0; t < T; ++t)
    most = std::max(most, ws_block_of((t + 1) * nkb - 1, U, B) - ws_block_of(t * nkb, U, B) + 1);
  const size_t need = static_cast<size_t>(most) * T * 256 * (M <= 16 ? 16 : M <= 32 ? 32 : 64);
  return need <= sc.partial_floats ? B : 0;
}

Plan ws_plan(const Weight& w, int M, const SplitScratch& sc, int num_sms) {
  const int nkb = (w.K + 63) / 64;
  int forced_rows, forced_splits;  // (the rows are the kernel's)
  forced_config(forced_rows, forced_splits);
  Plan p;
  p.rows = WsShape<TiledInt8, 8>::kRows;
  const int max_splits = std::max(1, std::min(kMaxSplits, nkb / 8));
  p.splits = forced_splits > 0 ? std::min(forced_splits, nkb) : std::clamp(num_sms / ceil_div(w.N, p.rows), 1, max_splits);
  cap_splits(p, w, M, sc);
  p.wgmma = true;
  p.pipe = 3;
  p.stream_k = ws_stream_k_blocks(w, M, p, sc, num_sms);
  return p;
}

Plan plan_for(const Weight& w, int M, const SplitScratch& sc, int num_sms) {
  const bool wg = wgmma_here();
  const bool int4 = w.format == WeightFormat::int4_awq;
  // At 2-64 tokens the warp-specialized kernel (linear_wo_ws.cuh; pipe 3): on an H200, decode
  // steps at 512 keys in turns against the kernels below (docs/benchmarks-gpu-wgmma.md), int8_wo
  // b24 7.08 -> 4.83 ms, b32 7.38 -> 5.06, b64 8.25 -> 6.80; int4 b24 4.73 -> 4.39, b32 4.97 ->
  // 4.61, b64 6.89 -> 6.24; at 9-16 against the mma.sync kernel (by K slices, before stream-K)
  // int8_wo b9 6.29 -> 4.14, b16 6.82 -> 4.33, int4 b9 3.89 -> 3.75, b16 4.21 -> 3.92; at 5-8
  // (int4's down_proj, which the streaming GEMV cannot stage there) int4 b5 3.82 -> 3.19, b8
  // 4.28 -> 3.68 (GRPST_CUDA_WO_WS_FROM: its fewest rows by default, 2). Where it cannot run (int4 in
  // groups under 64 columns) or when asked (GRPST_CUDA_WO_WGMMA_PIPE=0-2), from 17 tokens the
  // one-warpgroup wgmma kernels (linear_wo_wgmma.cuh), below that the mma.sync one: 0
  // plain, 1 pipelined by steps (two A buffers), 2 by half steps; measured against each other on
  // an H200 (decode steps at 512 keys, ms): int8_wo at 33-64 tokens by steps (b40 7.67 -> 7.34,
  // b48 8.09 -> 7.58, b64 9.12 -> 8.24; at 17-32 within 2% either way), int4 at 17-32 by half
  // steps (b24 4.74 -> 4.65, b32 4.96 -> 4.87 against the overlapped kernel; at 33-64 within 1%,
  // and by steps 8-10% slower: two A buffers leave two blocks per SM at 128 rows). All read one
  // set of int4 scales per step: groups of 64 columns or more.
  int pipe = 0;
  const int ws_from = env_int("GRPST_CUDA_WO_WS_FROM", 2);
  if (wg && (M > 8 || M >= ws_from) && (!int4 || w.group_size >= 64)) {
    pipe = env_int("GRPST_CUDA_WO_WGMMA_PIPE", -1);
    if (pipe < 0 || pipe > 3) pipe = M > 16 || M >= ws_from ? 3 : 0;
    if (M <= 16 && pipe != 3) pipe = 0;  // (the one-warpgroup kernels run from 17 rows)
  }
  if (pipe == 3) return ws_plan(w, M, sc, num_sms);
  Residency res;
  if (M > 32 && wg) {
    res = int4 ? residency_wgmma<TiledInt4>(pipe) : residency_wgmma<TiledInt8>(pipe);
  } else if (M > 32) {
    if (int4) res = {resident_per_sm<TiledInt4, 8, 4, 1>(), resident_per_sm<TiledInt4, 8, 4, 2>()};
    else res = {resident_per_sm<TiledInt8, 8, 4, 1>(), resident_per_sm<TiledInt8, 8, 4, 2>()};
  }
  Plan p = choose(w, M, sc, num_sms, res, wg && !int4);
  // From 17 tokens (wgmma n32 / n64). At 16 the mma.sync kernel measured faster on an H200 (int4
  // down_proj 22.7 against 24.2 us; a step of 16 rows 4.48 against 5.03 ms): a step's wgmma of n16
  // are too short to cover the wait on them before the next step is decoded.
  p.wgmma = wg && M > 16 && p.rows != 256;  // 256 rows (forced only): the mma.sync kernel's 8 warps
  // Steps overlapped (linear_wo_wgmma.cuh) for int4 at 17-32 tokens where the half-step pipeline
  // does not run (groups under 64 columns): on an H200, decode steps of 32 rows at 512 keys 5.02
  // against 5.41 ms (qkv 13.5 against 14.9 us, gate_up 39.4 against 41.0).
  // Not at 33-64 (int4's step even, 6.96 against 6.90; its five-stage ring changes which blocks
  // fit, and so the plan), nor int8_wo (b32 7.57 against 7.38 ms; ptxas serializes the
  // 64-row kernel's wgmma, C7515). GRPST_CUDA_WO_WGMMA_OVERLAP=0 turns it off.
  p.pipe = p.wgmma ? pipe : 0;
  p.overlap = !p.pipe && p.wgmma && int4 && M <= 32 && env_int("GRPST_CUDA_WO_WGMMA_OVERLAP", 1) != 0;
  return p;
}

template <class Dec, int J>
Status dispatch_rows(const bf16* x, const Weight& w, const LinearOut& out, int M, const Plan& p, const SplitScratch& sc,
                     const Exec& ex) {
  if constexpr (J == 4 && std::is_same_v<Dec, TiledInt4>) {
    if (p.overlap) {
      if (p.rows == 128) return launch_wgmma<Dec, J, 2, true>(x, w, out, M, p.splits, sc, ex);
      return launch_wgmma<Dec, J, 1, true>(x, w, out, M, p.splits, sc, ex);
    }
  }
  if (p.pipe == 3) return launch_ws<Dec, J>(x, w, out, M, p, sc, ex);
  if constexpr (J >= 4) {
    if (p.pipe == 1) {
      if (p.rows == 128) return launch_wgmma_pipe<Dec, J, 2, false>(x, w, out, M, p.splits, sc, ex);
      return launch_wgmma_pipe<Dec, J, 1, false>(x, w, out, M, p.splits, sc, ex);
    }
    if (p.pipe == 2) {
      if (p.rows == 128) return launch_wgmma_pipe<Dec, J, 2, true>(x, w, out, M, p.splits, sc, ex);
      return launch_wgmma_pipe<Dec, J, 1, true>(x, w, out, M, p.splits, sc, ex);
    }
  }
  if (p.wgmma) {
    if (p.rows == 128) return launch_wgmma<Dec, J, 2, false>(x, w, out, M, p.splits, sc, ex);
    return launch_wgmma<Dec, J, 1, false>(x, w, out, M, p.splits, sc, ex);
  }
  // int4 at up to 8 rows: the scales addressed per step (see stage_scales_per_step).
  if constexpr (J == 2 && std::is_same_v<Dec, TiledInt4>) {
    if (M <= 8 && p.rows == 128) return launch_tiled<Dec, J, 4, 2, true>(x, w, out, M, p.splits, sc, ex);
    if (M <= 8 && p.rows == 64) return launch_tiled<Dec, J, 4, 1, true>(x, w, out, M, p.splits, sc, ex);
  }
  if (p.rows == 256) return launch_tiled<Dec, J, 8, 2>(x, w, out, M, p.splits, sc, ex);
  if (p.rows == 128) return launch_tiled<Dec, J, 4, 2>(x, w, out, M, p.splits, sc, ex);
  return launch_tiled<Dec, J, 4, 1>(x, w, out, M, p.splits, sc, ex);
}

template <class Dec>
Status dispatch(const bf16* x, const Weight& w, const LinearOut& out, int M, const Plan& p, const SplitScratch& sc,
                const Exec& ex) {
  if (M <= 16) return dispatch_rows<Dec, 2>(x, w, out, M, p, sc, ex);
  if (M <= 32) return dispatch_rows<Dec, 4>(x, w, out, M, p, sc, ex);
  return dispatch_rows<Dec, 8>(x, w, out, M, p, sc, ex);
}

}  // namespace

bool linear_wo_tiled_supported(const Weight& w) {
  if (w.K % 8 != 0) return false;
  if (w.format == WeightFormat::int8_wo) return true;
  if (w.format != WeightFormat::int4_awq) return false;
  const int G = w.group_size;
  return G == 16 || G == 32 || (G >= 64 && G % 64 == 0);
}

int linear_wo_tiled_splits(const Weight& w, int M, const SplitScratch& sc, int num_sms, int* rows, bool* wgmma,
                           bool* overlap, int* pipe, int* stream_k) {
  const Plan p = plan_for(w, M, sc, num_sms);
  if (stream_k) *stream_k = p.stream_k;
  if (rows) *rows = p.rows;
  if (wgmma) *wgmma = p.wgmma;
  if (overlap) *overlap = p.overlap;
  if (pipe) *pipe = p.pipe;
  return p.splits;
}

Status linear_wo_tiled(const bf16* x, const Weight& w, const LinearOut& out, int M, const SplitScratch& sc,
                       int num_sms, const Exec& ex) {
  if (M <= 0) return ok_status();
  if (M > kWoTiledMaxRows) return invalid("linear_wo_tiled", "at most 64 rows; use the GEMM path");
  if (!linear_wo_tiled_supported(w))
    return invalid("linear_wo_tiled", "int8_wo, or int4_awq in groups of 16, 32 or a multiple of 64, with K % 8 == 0");
  if (out.epi == Epilogue::swiglu && w.N % 2 != 0) return invalid("linear_wo_tiled", "SwiGLU needs an even N");
  const Plan p = plan_for(w, M, sc, num_sms);
  if (w.format == WeightFormat::int4_awq) return dispatch<TiledInt4>(x, w, out, M, p, sc, ex);
  return dispatch<TiledInt8>(x, w, out, M, p, sc, ex);
}

}  // namespace grpst::cuda
