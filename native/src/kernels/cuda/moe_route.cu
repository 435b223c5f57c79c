// Qwen3-MoE routing on the GPU: router logits, softmax and top k per token (moe_route), then the
// step's (token, rank) pairs grouped by expert into tiles listed on the device (moe_group).
#include <climits>

#include "device_utils.cuh"
#include "moe.h"

namespace grpst::cuda {
namespace {

constexpr int kLogitWarps = 4;  // router rows per block of moe_router_logits_kernel
constexpr int kLogitChunks = 8;  // 16-byte chunks of its row a lane loads before the wait (H <= 2,048 whole)

// logits[t, e] = router[e] . x[t]: block (b, t) takes experts [b kLogitWarps, +kLogitWarps), one
// per warp, so the router's [E, H] is read by E / kLogitWarps blocks at once (one block per
// token took 30-40 us a layer at Qwen3-30B-A3B's 128 x 2,048, latency-bound on one SM). The
// router does not depend on the previous kernel: each lane's first chunks load before the wait.
// Each lane sums its strided chunks, then the warp: the order of the one-block version.
__global__ void __launch_bounds__(kLogitWarps * 32)
    moe_router_logits_kernel(const bf16* __restrict__ x /*[T,H]*/, const bf16* __restrict__ router /*[E,H]*/, int H,
                             int E, float* __restrict__ logits /*[T,E]*/) {
  const int t = blockIdx.y, lane = threadIdx.x & 31;
  const int e = blockIdx.x * kLogitWarps + (threadIdx.x >> 5);
  const int n8 = H / 8;
  const uint4* wr = reinterpret_cast<const uint4*>(router + static_cast<size_t>(e < E ? e : 0) * H);
  uint4 w[kLogitChunks];
#pragma unroll
  for (int i = 0; i < kLogitChunks; ++i) {
    const int j = lane + 32 * i;
    w[i] = j < n8 ? __ldg(wr + j) : make_uint4(0, 0, 0, 0);
  }
  griddep_wait();
  griddep_launch_dependents();
  if (e >= E) return;
  const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<size_t>(t) * H);
  float acc = 0.f;
#pragma unroll
  for (int i = 0; i < kLogitChunks; ++i) {
    const int j = lane + 32 * i;
    if (j >= n8) break;
    float xf[8], wf[8];
    unpack8(xr[j], xf);
    unpack8(w[i], wf);
#pragma unroll
    for (int k = 0; k < 8; ++k) acc = fmaf(wf[k], xf[k], acc);
  }
  for (int j = lane + 32 * kLogitChunks; j < n8; j += 32) {  // rows longer than the chunks loaded early
    float xf[8], wf[8];
    unpack8(xr[j], xf);
    unpack8(__ldg(wr + j), wf);
#pragma unroll
    for (int k = 0; k < 8; ++k) acc = fmaf(wf[k], xf[k], acc);
  }
  acc = warp_sum(acc);
  if (lane == 0) logits[static_cast<size_t>(t) * E + e] = acc;
}

// One block per token, after moe_router_logits_kernel: warp 0 the softmax over its logits and the
// top k as the CPU backend takes them (probabilities falling, the lower expert first among equal
// ones), and the weights.
__global__ void __launch_bounds__(32)
    moe_route_kernel(const float* __restrict__ logits /*[T,E]*/, int E, int K, bool norm_topk,
                     int32_t* __restrict__ choice /*[T,K]*/, float* __restrict__ weight /*[T,K]*/) {
  extern __shared__ float prob[];  // [E]: logits, then probabilities
  __shared__ float picked[kMoeMaxTopK];
  griddep_wait();
  griddep_launch_dependents();
  const int t = blockIdx.x, lane = threadIdx.x;
  for (int e = lane; e < E; e += 32) prob[e] = logits[static_cast<size_t>(t) * E + e];
  __syncwarp();

  // softmax in fp32 (transformers: softmax(router_logits, dtype=float))
  float mx = -INFINITY;
  for (int e = lane; e < E; e += 32) mx = fmaxf(mx, prob[e]);
  mx = warp_max(mx);
  float sum = 0.f;
  for (int e = lane; e < E; e += 32) sum += (prob[e] = expf(prob[e] - mx));
  sum = warp_sum(sum);
  for (int e = lane; e < E; e += 32) prob[e] = prob[e] / sum;
  __syncwarp();

  // K rounds of a warp-wide argmax over the experts not taken yet; bit i of `taken` is expert
  // lane + 32 i of this lane.
  uint32_t taken = 0;
  float kept = 0.f;
  for (int j = 0; j < K; ++j) {
    float bp = -INFINITY;
    int be = INT_MAX;
    for (int i = 0, e = lane; e < E; ++i, e += 32) {
      if (taken >> i & 1u) continue;
      const float p = prob[e];
      if (be == INT_MAX || p > bp) bp = p, be = e;  // ascending e: the first of equal ones stays
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float op = __shfl_xor_sync(0xffffffffu, bp, o);
      const int oe = __shfl_xor_sync(0xffffffffu, be, o);
      if (oe != INT_MAX && (be == INT_MAX || op > bp || (op == bp && oe < be))) bp = op, be = oe;
    }
    // Lane 0's pick for all (lanes could differ only where NaN probabilities defeat the order).
    bp = __shfl_sync(0xffffffffu, bp, 0);
    be = __shfl_sync(0xffffffffu, be, 0);
    if (be != INT_MAX && (be & 31) == lane) taken |= 1u << (be >> 5);
    kept += bp;  // in rank order, as the CPU sums them
    if (lane == 0) {
      picked[j] = bp;
      choice[static_cast<size_t>(t) * K + j] = be;
    }
  }
  __syncwarp();
  for (int j = lane; j < K; j += 32)
    weight[static_cast<size_t>(t) * K + j] = norm_topk ? picked[j] / kept : picked[j];
}

// One warp: counts per expert, their prefix sums and the tile list (lane 0, in expert order), then
// each pair's grouped row, 32 pairs at a time in pair order: lanes choosing the same expert take
// consecutive rows by lane (match_any), so the order is the same on every run.
__global__ void __launch_bounds__(32)
    moe_group_kernel(const int32_t* __restrict__ choice /*[P]*/, int P, int K, int E, int32_t* __restrict__ slot,
                     int32_t* __restrict__ row_token, MoeTile* __restrict__ tiles, int32_t* __restrict__ tile_count,
                     int tile_rows) {
  extern __shared__ int32_t next_row[];  // [E]: counts, then each expert's next free grouped row
  griddep_wait();
  griddep_launch_dependents();
  const int lane = threadIdx.x;
  for (int e = lane; e < E; e += 32) next_row[e] = 0;
  __syncwarp();
  for (int p = lane; p < P; p += 32) atomicAdd(&next_row[choice[p]], 1);
  __syncwarp();
  if (lane == 0) {
    int row = 0, n = 0;
    for (int e = 0; e < E; ++e) {
      const int c = next_row[e];
      next_row[e] = row;
      for (int r = 0; r < c; r += tile_rows) tiles[n++] = MoeTile{e, row + r, min(tile_rows, c - r), 0};
      row += c;
    }
    *tile_count = n;
  }
  __syncwarp();
  for (int base = 0; base < P; base += 32) {
    const int p = base + lane;
    const int e = p < P ? choice[p] : -1;
    const unsigned peers = __match_any_sync(0xffffffffu, e);
    const int r = p < P ? next_row[e] + __popc(peers & ((1u << lane) - 1u)) : 0;
    __syncwarp();
    if (p < P && lane == __ffs(peers) - 1) next_row[e] += __popc(peers);
    __syncwarp();
    if (p < P) {
      slot[p] = r;
      row_token[r] = p / K;
    }
  }
}

}  // namespace

Status moe_route(const bf16* x, const bf16* router, int T, int H, int E, int K, bool norm_topk, float* logits,
                 int32_t* choice, float* weight, const Exec& ex) {
  if (H % 8 != 0) return invalid("moe_route", "hidden size must be a multiple of 8");
  if (E < 1 || E > kMoeMaxExperts) return invalid("moe_route", "between 1 and 1024 experts");
  if (K < 1 || K > E || K > kMoeMaxTopK) return invalid("moe_route", "top k must be between 1 and min(experts, 32)");
  if (T <= 0) return ok_status();
  GRPST_TRY(launch("moe_router_logits", moe_router_logits_kernel, dim3(ceil_div(E, kLogitWarps), T),
                   dim3(kLogitWarps * 32), 0, ex, x, router, H, E, logits));
  return launch("moe_route", moe_route_kernel, dim3(T), dim3(32), static_cast<size_t>(E) * 4, ex,
                static_cast<const float*>(logits), E, K, norm_topk, choice, weight);
}

Status moe_group(const int32_t* choice, int P, int K, int E, int32_t* slot, int32_t* row_token, MoeTile* tiles,
                 int32_t* tile_count, const Exec& ex, int tile_rows) {
  if (E < 1 || E > kMoeMaxExperts) return invalid("moe_group", "between 1 and 1024 experts");
  if (tile_rows != kMoeTileRows && tile_rows != kMoeWideRows)
    return invalid("moe_group", "tiles of kMoeTileRows or kMoeWideRows rows");
  if (K < 1 || P % K != 0) return invalid("moe_group", "the pairs must be whole tokens of K");
  if (P <= 0) return ok_status();
  return launch("moe_group", moe_group_kernel, dim3(1), dim3(32), static_cast<size_t>(E) * 4, ex, choice, P, K, E,
                slot, row_token, tiles, tile_count, tile_rows);
}

}  // namespace grpst::cuda
