// Weight-streaming tensor-core GEMV for decode (M <= 8 tokens), every weight format: which
// variant of the kernel (linear_stream_kernel.cuh, where its design is described) a shape takes,
// its shared memory and grid, and the launch.
#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "env_switch.h"
#include "linear_stream_kernel.cuh"

namespace grpst::cuda {
namespace {

constexpr int kBlocksPerSm = 2;
// Shared memory a block may take (its activations grow with the rows and K); beyond it
// linear_stream_supported says no and the forward takes another kernel. Two blocks of more than
// ~97 KB ran one per SM on an H200 (the driver's carveout held 196 KB: bf16 down_proj alone at 4
// rows 40.2 us against 28.3 at 3), and asking for the largest carveout made every step of several
// rows slower (4-37%: the SMs reconfigure between kernels). So 96 KB, where the other kernels
// take those shapes faster in a step (bf16 b4 4.82 against 6.47 ms, int8_wo b4 3.57 against 3.99,
// int8_sq b8 6.16 against 6.59); int4 keeps 110 KB, its skinny kernel being slower still (b4 3.21
// against 3.46). GRPST_CUDA_STREAM_MAX_SMEM_KB overrides both (docs/benchmarks-gpu-passes.md).
template <class F>
size_t max_smem() {
  return static_cast<size_t>(env_int("GRPST_CUDA_STREAM_MAX_SMEM_KB", F::kGroups ? 110 : 96)) * 1024;
}
// The int4 / fp8 occupancy variant: three blocks per SM with half the loads per round (fewer
// registers), more warps to hide latency. Taken at one row for matrices of more 16-row tiles than
// the standard grid has blocks (at the 8B shape qkv, gate_up and lm_head, where it measured 4-10%
// faster on an H200; o_proj and down_proj, one tile per block, measured 25-40% slower with it).
// int4 with 128-column groups no longer takes it: since its scales load as row pairs (one 4-byte
// load, no wait at the load) two blocks per SM are as fast or faster at every 8B shape (gate_up
// 15.5 against 16.3 us with three, lm_head 73.2 against 75.0, qkv even).
// GRPST_CUDA_STREAM_OCCUPANCY=2 or 3 forces one for every shape (tests and benches).
constexpr int kDenseBlocksPerSm = 3;
constexpr size_t kDenseMaxSmem = 72 * 1024;

int sm_count() {
  static int count = 0;
  if (count == 0) {
    int dev = 0;
    cudaGetDevice(&dev);
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || count <= 0) count = 132;
  }
  return count;
}

// ks > 1: one block's share of a K split (the caller checks that K is a whole number of ks x 64).
template <class F>
Geometry geometry(const Weight& w, int M, int ks = 1) {
  Geometry geo{};
  geo.ks = ks;
  geo.nitems = ceil_div(w.K, 64) / ks;
  geo.nchunks = ceil_div(geo.nitems, F::kKpg);
  const int ipw = ceil_div(geo.nchunks, kWarps) * F::kKpg;
  geo.rounds = ceil_div(ipw, F::kU);
  geo.kp = geo.nitems * 64;
  if (F::kGroups) {
    geo.ngroups = ceil_div(w.K, w.group_size);
    geo.kp = geo.ngroups * w.group_size;
  }
  switch (F::kX) {
    case XLayout::bf16_natural: geo.xs = geo.kp * 2 + 16; break;
    case XLayout::bf16_frag: geo.xs = geo.nitems * 128 + 16; break;
    case XLayout::i8_natural: geo.xs = (geo.kp + 127) / 128 * 128 + 64; break;
  }
  // the int4 staging writes whole groups: make room for the frag layout of kp columns
  if (F::kGroups) geo.xs = std::max(geo.xs, geo.kp / 64 * 128 + 16);
  const int sums = F::kGroups ? (M * geo.ngroups * 4 + 15) / 16 * 16 : 0;
  geo.red_off = M * geo.xs + sums;
  return geo;
}

// Bytes of a ring stage, all warps of a block: the weight pieces, and int4's scales and zeros.
template <class F>
constexpr size_t ring_stage_bytes() {
  return static_cast<size_t>(kWarps) * (F::kU * F::kVecs * 32 * 16 + (F::kGroups ? F::kU / F::kKpg * 16 * 4 : 0));
}

template <class F, int S = 0>
size_t smem_bytes(const Geometry& geo) {
  const size_t red_end = static_cast<size_t>(geo.red_off) + 2 * kWarps * 16 * 8 * sizeof(typename F::Acc);
  return S == 0 ? red_end : (red_end + 15) / 16 * 16 + S * ring_stage_bytes<F>();
}

// Weight rounds the register kernel issues before its wait on the previous kernel: two, but one
// for int8_wo at one token and for int4 (GRPST_CUDA_STREAM_EARLY_ROUNDS=1|2 forces either).
// Measured on an H200, decode steps at 512 keys: fp8 b1 2.830 -> 2.815 ms, int8_sq 3.047 ->
// 3.005, bf16 4.368 -> 4.353, b4 0.6-1.1% faster in every quantized format; int8_wo b1 2.860 ->
// 2.955, slower; int4 (since its scales load as row pairs) b1 2.121 against 2.220, b8 4.874
// against 4.917, b4 even (docs/benchmarks-gpu-passes.md).
template <class F>
int early_rounds_for(int forced, int M) {
  if (forced == 1 || forced == 2) return forced;
  if constexpr (F::kGroups) return 1;
  return std::is_same_v<F, FmtInt8Wo> && M == 1 ? 1 : 2;
}

// The variant switches (tests and benchmarks flip them between launches), read once per call:
// GRPST_CUDA_STREAM_RING=0|1 and GRPST_CUDA_STREAM_OCCUPANCY=2|3 force a variant at any row count
// (-1 / 0: the measured defaults below); GRPST_CUDA_STREAM_EXACT=0 turns the exact kernel off.
// GRPST_CUDA_STREAM_BLOCK_STATS=0|1: the row statistics by one warp per row (0) or by the whole
// block (1) at every row count (default: the block at one token, and for int8_sq, whose amax
// needs them, at every count; see block_row_stats). GRPST_CUDA_STREAM_FDIV=1: the fp8 / int8_sq
// activations divided by __fdiv_rn in the staging (div_by gives the same bits in fewer steps).
// GRPST_CUDA_PROLOGUE_ALL_ROWS=0: the prologue (x staged, the block's row statistics) takes the rows
// one after another, not all at once (the same bits). GRPST_CUDA_STREAM_KSPLIT: 0 (default) the
// K split as ksplit_for chooses; 1 never (shapes whose rows do not fit go to another kernel); 2 or
// 4 at least that many shares wherever they fit (tests, benches). GRPST_CUDA_STREAM_KSPLIT_MIN_ROWCOLS:
// rows x K from which fp8 / int8_sq split (kSplit8BitMinRowCols; 0: only where the rows do not fit).
// GRPST_CUDA_STREAM_KSPLIT_ONE_ROW=1: fp8 / int8_sq split at one row too (off: measured slower).
// GRPST_CUDA_STREAM_STAGE_ONCE=0: one token's x loaded for each pass of the prologue (the norm's
// statistics, int8_sq's amax, the staging: block_row_stats, stage_x) instead of once
// (stage_x_once, stage_x_amax_once; the same bits). GRPST_CUDA_STREAM_ONE_ROW_BATCH=0: stage_x at
// one row loads a chunk at a time instead of kOneRowBatch at once (the same bits).
// GRPST_CUDA_STREAM_EPI_EARLY=0: the epilogue's scales (fp8's per tensor, int8_wo / int8_sq's per
// channel) loaded in the epilogue instead of copied to shared memory before the wait (the same bits).
constexpr int kSplit8BitMinRowCols = 20480;  // see ksplit_for
struct Switches {
  int ring = env_int("GRPST_CUDA_STREAM_RING", -1);
  int occupancy = env_int("GRPST_CUDA_STREAM_OCCUPANCY", 0);
  bool exact = env_int("GRPST_CUDA_STREAM_EXACT", 1) != 0;
  int block_stats = env_int("GRPST_CUDA_STREAM_BLOCK_STATS", -1);
  int early_rounds = env_int("GRPST_CUDA_STREAM_EARLY_ROUNDS", 0);
  int fdiv = env_int("GRPST_CUDA_STREAM_FDIV", 0) != 0 ? 1 : 0;
  int all_rows = env_int("GRPST_CUDA_PROLOGUE_ALL_ROWS", 1) != 0 ? 1 : 0;
  int ksplit = env_int("GRPST_CUDA_STREAM_KSPLIT", 0);
  int stage_once = env_int("GRPST_CUDA_STREAM_STAGE_ONCE", 1) != 0 ? 1 : 0;
  int one_row_batch = env_int("GRPST_CUDA_STREAM_ONE_ROW_BATCH", 1) != 0 ? 1 : 0;
  int epi_early = env_int("GRPST_CUDA_STREAM_EPI_EARLY", 1) != 0 ? 1 : 0;
  int split_min_rowcols = env_int("GRPST_CUDA_STREAM_KSPLIT_MIN_ROWCOLS", kSplit8BitMinRowCols);
  bool split_one_row = env_int("GRPST_CUDA_STREAM_KSPLIT_ONE_ROW", 0) != 0;
};

// Whether the exact kernel (E) applies: whole 16-row tiles, K a whole number of items (int4: of
// groups), every warp's share of a tile a whole number of full rounds (at the 8B shape every
// projection and the LM head), weights under 2 GiB (32-bit offsets).
template <class F>
bool exact_geometry(const Weight& w, const Geometry& geo, const Switches& sw) {
  if (!sw.exact || w.N % 16 != 0 || geo.kp * geo.ks != w.K || geo.nitems * 64 * geo.ks != w.K) return false;
  if (static_cast<int64_t>(w.N) * w.K >= (int64_t{1} << 31)) return false;  // 32-bit offsets (Off<true>)
  return geo.nchunks % kWarps == 0 && (geo.nchunks / kWarps * F::kKpg) % F::kU == 0;
}

thread_local bool t_last_exact = false;
thread_local int t_last_ksplit = 1;

template <class F, int S = 0>
bool fits(const Weight& w, int M, size_t limit = max_smem<F>(), int ks = 1) {
  return smem_bytes<F, S>(geometry<F>(w, M, ks)) <= limit;
}

// The K-split kernel of ks (2 or 4) shares: the exact one for whole tiles and rounds, else the
// general one.
template <class F>
auto split_kernel(int ks, bool exact) {
  if (ks == 2)
    return exact ? linear_stream_kernel<F, kBlocksPerSm, 0, kExactRows, 2> : linear_stream_kernel<F, kBlocksPerSm, 0, kGeneral, 2>;
  return exact ? linear_stream_kernel<F, kBlocksPerSm, 0, kExactRows, 4> : linear_stream_kernel<F, kBlocksPerSm, 0, kGeneral, 4>;
}

// Clusters of the K-split kernel that the GPU holds at once (0: none, e.g. no cluster support).
template <class F>
int split_clusters(const Weight& w, int M, int ks, bool exact) {
  if constexpr (F::kGroups) {
    return 0;
  } else {
    const auto kernel = split_kernel<F>(ks, exact);
    const size_t smem = smem_bytes<F>(geometry<F>(w, M, ks));
    if (!allow_smem("linear_stream", kernel, smem).ok()) return 0;
    return active_clusters(reinterpret_cast<const void*>(kernel), ks, kThreads, smem);
  }
}

// The shares of K a launch takes (1: none), 0 where no form fits (see GRPST_CUDA_STREAM_KSPLIT).
// By default two shares where one block's shared memory does not hold the rows' activations
// (down_proj from 4 rows of bf16 / int8_wo, K = 12,288), never four: measured on an H200 (rows at
// the 8B shape), bf16 down_proj at 4-7 rows 29.0-30.5 us split in two against 30.5-30.8 in
// cuBLASLt, at 8 rows 35.0 split in four against 30.6; int8_wo at 4-7 rows 19.1-20.1 against the
// skinny kernel's 22.9-26.7, in four at 8 rows 25.2 against 27.1 but no faster in the step. And
// fp8 / int8_sq split in two where the rows fit too, from 2 rows and M x K >= kSplit8BitMinRowCols,
// with at most two tiles per block of the grid: their staging quantizes every column, and two blocks per
// tile halve it (down_proj at 2-7 rows, int8_sq 20.7-30.7 us against 22.8-39.9 whole, fp8 17.8-22.8
// against 19.1-28.6; qkv and o_proj of int8_sq from 5 rows, 19.5 / 12.4 against 21.3 / 13.2 at 5,
// 23.6 / 14.3 against 26.2 / 15.9 at 8; fp8 from 5-6 rows); not gate_up, whose 1,536 tiles make
// the split 3-23% slower at every count. bf16 and int8_wo whole rows stay whole (their split
// 0.4-1.7 us slower at 2-3 rows, o_proj at every count).
template <class F>
int ksplit_for(const Weight& w, int M, const Switches& sw) {
  const bool whole = fits<F>(w, M);
  if (F::kGroups || sw.ksplit == 1) return whole ? 1 : 0;
  auto can = [&](int ks) {
    return w.K % (64 * ks) == 0 && fits<F>(w, M, max_smem<F>(), ks) &&
           split_clusters<F>(w, M, ks, exact_geometry<F>(w, geometry<F>(w, M, ks), sw)) > 0;
  };
  if (sw.ksplit == 2 || sw.ksplit == 4) {
    for (int ks : {2, 4})
      if (ks >= sw.ksplit && can(ks)) return ks;
  }
  const bool eight_bit = F::kX == XLayout::i8_natural;
  const bool few_tiles = ceil_div(w.N, 16) <= 2 * kBlocksPerSm * sm_count();
  const int64_t rowcols = static_cast<int64_t>(M) * w.K;
  // One row keeps the exact one-token kernel whole: split (GRPST_CUDA_STREAM_KSPLIT_ONE_ROW=1: the
  // few-tile projections from K = 4,096), qkv and o_proj lost 1-2 us each and the decode step was
  // slower (fp8 2.797 -> 2.880 ms, int8_sq 2.972 -> 3.157; down_proj alone gained 0.3-1 us).
  const bool one_row = M == 1 && sw.split_one_row && w.K >= 4096;
  const bool by_rows = M >= 2 && sw.split_min_rowcols > 0 && rowcols >= sw.split_min_rowcols;
  if (whole && !(eight_bit && few_tiles && (one_row || by_rows))) return 1;
  return can(2) ? 2 : whole ? 1 : 0;
}

template <class F, int BPS = kBlocksPerSm, int S = 0>
Status launch_stream(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex,
                     const Switches& sw, int ks = 1) {
  Geometry geo = geometry<F>(w, M, ks);
  geo.ring_off = static_cast<int>((smem_bytes<F>(geo) + 15) / 16 * 16);
  const size_t smem = smem_bytes<F, S>(geo);
  const bool exact = exact_geometry<F>(w, geo, sw);
  const bool amax = F::kX == XLayout::i8_natural && std::is_same_v<typename F::Acc, int>;
  geo.block_stats = sw.block_stats == 0 || sw.block_stats == 1 ? sw.block_stats : amax || M == 1 ? 1 : 0;
  geo.early_rounds = early_rounds_for<F>(sw.early_rounds, M);
  geo.fdiv = sw.fdiv;
  geo.all_rows = sw.all_rows;
  geo.stage_once = sw.stage_once;
  geo.one_row_batch = sw.one_row_batch;
  geo.epi_early = sw.epi_early;
  t_last_exact = exact;
  t_last_ksplit = ks;
  const int ntiles = ceil_div(w.N, 16);
  if constexpr (S == 0 && BPS == kBlocksPerSm && !F::kGroups) {
    if (ks > 1) {
      // (split_clusters also raises the kernel's shared-memory limit)
      const int clusters = std::min(ntiles, split_clusters<F>(w, M, ks, exact));
      if (clusters <= 0) return invalid("linear_stream", "the K split's clusters do not fit this GPU");
      return launch_clusters("linear_stream", split_kernel<F>(ks, exact), dim3(clusters * ks), dim3(kThreads), smem, ex,
                             dim3(ks, 1, 1), in, w, out, M, geo);
    }
  }
  auto kernel = !exact ? linear_stream_kernel<F, BPS, S, kGeneral>
                : M == 1 ? linear_stream_kernel<F, BPS, S, kExactOne>
                         : linear_stream_kernel<F, BPS, S, kExactRows>;
  GRPST_TRY(allow_smem("linear_stream", kernel, smem));
  const int blocks = std::min(ntiles, BPS * sm_count());
  return launch("linear_stream", kernel, dim3(blocks), dim3(kThreads), smem, ex, in, w, out, M, geo);
}

// The cp.async ring variant (two blocks per SM, rounds of half the loads, kRingStages of them:
// three in flight per warp), where its shared memory fits. Measured at one row on an H200: fp8
// 3.50 ms per decode step against 3.77 with the register buffers (gate_up 29.0 against 33.7 us,
// lm_head 164 against 190), so fp8 takes it where the exact one-token kernel does not apply (that
// one, fewer instructions per load, beat it: 3.02 against 3.15 ms); int4 3.63 against 3.51 (its
// instructions, not its loads, bind), so int4 does not.
constexpr int kRingStages = 4;

// Launches FHalf (the format at half the loads per round) with the ring when wanted and it fits;
// *taken false otherwise.
template <class FHalf>
Status launch_ring(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex,
                   const Switches& sw, bool by_default, bool* taken) {
  const bool wanted = sw.ring == 0 || sw.ring == 1 ? sw.ring == 1 : by_default && M == 1;
  *taken = wanted && fits<FHalf, kRingStages>(w, M);
  if (!*taken) return ok_status();
  return launch_stream<FHalf, kBlocksPerSm, kRingStages>(in, w, out, M, ex, sw);
}

// Whether to take the occupancy variant F (three blocks per SM); see kDenseBlocksPerSm.
template <class F>
bool dense_wanted(const Weight& w, int M, const Switches& sw, bool by_default = true) {
  if (!fits<F>(w, M, kDenseMaxSmem)) return false;
  if (sw.occupancy == 2 || sw.occupancy == 3) return sw.occupancy == 3;
  return by_default && M == 1 && ceil_div(w.N, 16) > kBlocksPerSm * sm_count();
}

}  // namespace

bool linear_stream_last_exact() { return t_last_exact; }
int linear_stream_last_ksplit() { return t_last_ksplit; }

bool linear_stream_supported(const Weight& w, int M) {
  if (M < 1 || M > kStreamMaxRows || w.N <= 0 || w.K <= 0) return false;
  const Switches sw;
  switch (w.format) {
    case WeightFormat::bf16: return w.K % 8 == 0 && ksplit_for<FmtBf16>(w, M, sw) > 0;
    case WeightFormat::int8_wo: return ksplit_for<FmtInt8Wo>(w, M, sw) > 0;
    case WeightFormat::fp8: return w.K % 16 == 0 && ksplit_for<FmtNatural8<false>>(w, M, sw) > 0;
    case WeightFormat::int8_sq: return w.K % 16 == 0 && ksplit_for<FmtNatural8<true>>(w, M, sw) > 0;
    case WeightFormat::int4_awq:
      if (w.group_size == 64) return fits<FmtInt4<1>>(w, M);
      if (w.group_size == 128) return fits<FmtInt4<2>>(w, M);
      if (w.group_size == 256) return fits<FmtInt4<4>>(w, M);
      return false;
  }
  return false;
}

Status linear_stream(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  if (M <= 0) return ok_status();
  if (!linear_stream_supported(w, M))
    return invalid("linear_stream", "unsupported shape or format (check linear_stream_supported first)");
  if (out.epi == Epilogue::swiglu && w.N % 2 != 0) return invalid("linear_stream", "SwiGLU needs an even N");
  const Switches sw;
  switch (w.format) {
    case WeightFormat::bf16: return launch_stream<FmtBf16>(in, w, out, M, ex, sw, ksplit_for<FmtBf16>(w, M, sw));
    case WeightFormat::int8_wo: return launch_stream<FmtInt8Wo>(in, w, out, M, ex, sw, ksplit_for<FmtInt8Wo>(w, M, sw));
    case WeightFormat::fp8: {
      const int ks = ksplit_for<FmtNatural8<false>>(w, M, sw);
      if (ks > 1) return launch_stream<FmtNatural8<false>>(in, w, out, M, ex, sw, ks);
      // The exact one-token kernel at two blocks per SM beat the ring and three blocks per SM at
      // every projection and the LM head of the 8B shape (docs/benchmarks-gpu.md); the ring and the
      // occupancy variant stay the defaults where it does not apply.
      const bool exact = exact_geometry<FmtNatural8<false>>(w, geometry<FmtNatural8<false>>(w, M), sw);
      bool taken = false;
      const Status st = launch_ring<FmtNatural8<false, 2>>(in, w, out, M, ex, sw, !exact, &taken);
      if (taken) return st;
      if (dense_wanted<FmtNatural8<false, 2>>(w, M, sw, !exact))
        return launch_stream<FmtNatural8<false, 2>, kDenseBlocksPerSm>(in, w, out, M, ex, sw);
      return launch_stream<FmtNatural8<false>>(in, w, out, M, ex, sw);
    }
    case WeightFormat::int8_sq:
      return launch_stream<FmtNatural8<true>>(in, w, out, M, ex, sw, ksplit_for<FmtNatural8<true>>(w, M, sw));
    case WeightFormat::int4_awq:
      if (w.group_size == 64) {
        if (dense_wanted<FmtInt4<1, 4>>(w, M, sw)) return launch_stream<FmtInt4<1, 4>, kDenseBlocksPerSm>(in, w, out, M, ex, sw);
        return launch_stream<FmtInt4<1>>(in, w, out, M, ex, sw);
      }
      if (w.group_size == 128) {
        bool taken = false;
        const Status st = launch_ring<FmtInt4<2, 4>>(in, w, out, M, ex, sw, false, &taken);
        if (taken) return st;
        // two blocks per SM by default (see kDenseBlocksPerSm); the occupancy switch still forces three
        if (dense_wanted<FmtInt4<2, 4>>(w, M, sw, false)) return launch_stream<FmtInt4<2, 4>, kDenseBlocksPerSm>(in, w, out, M, ex, sw);
        return launch_stream<FmtInt4<2>>(in, w, out, M, ex, sw);
      }
      if (dense_wanted<FmtInt4<4, 4>>(w, M, sw)) return launch_stream<FmtInt4<4, 4>, kDenseBlocksPerSm>(in, w, out, M, ex, sw);
      return launch_stream<FmtInt4<4>>(in, w, out, M, ex, sw);
  }
  return invalid("linear_stream", "unknown weight format");
}

}  // namespace grpst::cuda
