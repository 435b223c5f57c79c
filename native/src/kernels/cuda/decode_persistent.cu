// One decode step of one sequence through every layer in a single persistent launch (bf16
// weights and KV cache). Batch-1 decode reads each weight byte once, so the step is a stream of
// 15 GB (Qwen3-8B) that separate kernels interrupt at every boundary: each GEMV ramps up and
// drains, and the attention and norms between them leave the memory idle. Here one block per SM
// runs all of it, with the phases of a layer separated by grid-wide barriers:
//   qkv = W_qkv . rmsnorm(h)  |  attention (q/k norm, RoPE, KV write, split softmax)  |
//   h += W_o . attn  |  act = swiglu(W_gate_up . rmsnorm(h))  |  h += W_down . act
// and a ring of shared-memory slots that bulk copies (cp.async.bulk on mbarriers) fill with the
// block's share of every weight, layer after layer, as slots free up. Weights do not depend on
// activations, so the ring runs a full ring ahead through the barriers and the attention phase:
// while the warps wait, the next matrix is already arriving. The eight warps multiply the slots
// with the phase's input (fp32 FMA; x in registers where rows are multiples of 2,048 elements)
// and run the fused prologues and epilogues with the rounding of the separate kernels
// (linear_common.cuh), so the CPU twins of those kernels are this kernel's twin. Row sums go
// through per-warp (or, for rows that are not a multiple of 256, per-thread) partials added in a
// fixed order: the result does not depend on timing.
// Measured on an H200 at the Qwen3-8B shape (docs/benchmarks-gpu-persistent.md): the ring and the
// barriers alone take 3.8 ms per step (95% of the roofline), with the arithmetic 5.2 ms against
// 4.5 for the separate kernels: eight warps per SM are latency-bound on each slot's loads, products, warp
// reductions and counter, and a slot is out of the ring until its slowest reader has read it
// (sixteen warps, tensor cores on the slots and a software-pipelined read measured slower still:
// the per-slot path is what is long). Off by default (cuda_forward.h).
#include <algorithm>
#include <atomic>

#include "decode_persistent_attention.cuh"
#include "decode_persistent_slots.cuh"
#include "linear_common.cuh"

namespace grpst::cuda {
namespace persistent {
namespace {

enum Phase : int { kQkv = 0, kO = 1, kGateUp = 2, kDown = 3, kPhases = 4 };
constexpr int kFinishLag = 3;  // pieces between reading a piece and finishing it (stream_phase_j)
static_assert(kFinishLag >= 2 && kFinishLag <= kWarps, "the tail finishes one piece per warp");

struct Matrix {
  const bf16* w;  // [N, K]
  int N, K;
  bool pairs;  // gate_up: rows come in (gate, up) pairs that stay in one block and one slot
};

__device__ __forceinline__ const bf16* weight_of(const PersistentLayer& L, int phase) {
  switch (phase) {
    case kQkv: return L.qkv;
    case kO: return L.o;
    case kGateUp: return L.gate_up;
    default: return L.down;
  }
}

// A phase's matrix shape (w left null: the shape is the same in every layer).
__device__ __forceinline__ Matrix shape_of(const PersistentDecode& p, int phase) {
  const int H = p.hidden, A = p.heads * p.head_dim, Q = (p.heads + 2 * p.kv_heads) * p.head_dim;
  switch (phase) {
    case kQkv: return {nullptr, Q, H, false};
    case kO: return {nullptr, H, A, false};
    case kGateUp: return {nullptr, 2 * p.intermediate, H, true};
    default: return {nullptr, H, p.intermediate, false};
  }
}

// A matrix is cut into chunks of rs rows (whole rows of one slot; gate_up an even number), and
// block b takes chunks b, b + grid, b + 2 grid, ...: at any moment the blocks stream neighbouring
// chunks, one window of the matrix, as the separate GEMV kernels do (a contiguous share per block
// measured the same). This block's pieces of a layer (the same in every layer): phase ph's are
// pieces first[ph] .. first[ph + 1] - 1.
struct Pieces {
  int rows[kPhases], rs[kPhases], first[kPhases + 1];
  __device__ void init(const PersistentDecode& p, const Plan& plan) {
    first[0] = 0;
    for (int ph = 0; ph < kPhases; ++ph) {
      const Matrix m = shape_of(p, ph);
      rows[ph] = m.N;
      rs[ph] = rows_per_slot(plan.slot_bytes, m.K, m.pairs);
      const int chunks = (m.N + rs[ph] - 1) / rs[ph];
      first[ph + 1] = first[ph] + (chunks > static_cast<int>(blockIdx.x) ? (chunks - 1 - blockIdx.x) / gridDim.x + 1 : 0);
    }
  }
  // The first row and the row count of this block's k-th piece of phase ph.
  __device__ int row_of(int ph, int k) const { return (blockIdx.x + k * gridDim.x) * rs[ph]; }
  __device__ int count_of(int ph, int row) const { return min(rs[ph], rows[ph] - row); }
};

// The weight ring: slot i % slots holds this block's i-th piece, full[s] completing when its bulk
// copy has landed. Each warp reads every piece (its share of the columns) into registers and
// counts itself in read_warps[s]; the last warp to do so refills the slot with the piece `slots`
// further on (stream_phase_j). No block-wide barrier per slot: the warps drift apart by up to a
// ring, and the ring stays a ring ahead of the slowest.
struct Ring {
  uint8_t* base;
  uint64_t* full;
  int* read_warps;       // [slots], zero at rest: warps that have read the slot's weights
  volatile int* read_round;  // [slots]: rounds of the slot every warp has read
  const Pieces* pieces;  // shared memory
  const bf16* const* table;  // shared memory: [kTableLayers][kPhases] weight addresses
  int it = 0;            // pieces this thread has consumed in this launch
  int slot = 0, round = 0;  // it % slots, it / slots

  __device__ void advance(int slots) {
    ++it;
    if (++slot == slots) slot = 0, ++round;
  }

  __device__ void fetch(int piece, int s, const PersistentDecode& p, const Plan& plan) const {
    const int per_layer = pieces->first[kPhases];
    if (piece >= per_layer * p.num_layers) return;
    const int layer = piece / per_layer, j = piece % per_layer;
    int ph = 0;
    while (j >= pieces->first[ph + 1]) ++ph;
    const int row = pieces->row_of(ph, j - pieces->first[ph]);
    const Matrix m = shape_of(p, ph);
    const bf16* w = layer < kTableLayers ? table[layer * kPhases + ph] : weight_of(p.layers[layer], ph);
    const uint32_t bytes = static_cast<uint32_t>(pieces->count_of(ph, row)) * m.K * 2;
    // The warps' reads of the slot (generic proxy) before the copy's writes (async proxy).
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    mbar_arrive_expect_tx(&full[s], bytes);
    bulk_copy_g2s(base + static_cast<size_t>(s) * plan.slot_bytes, w + static_cast<size_t>(row) * m.K, bytes, &full[s],
                  l2_evict_first_policy());
  }
};

// Stores a finished output of phase ph: row's value v (gate_up: the pair's gate v and up u), hv
// the residual stream's value at row for O and down (the residual add of linear_common.cuh).
struct PhaseStore {
  const PersistentDecode& p;
  int ph;
  __device__ void operator()(int row, float v, float u, float hv) const {
    switch (ph) {
      case kQkv: p.qkv[row] = __float2bfloat16_rn(v); break;
      case kGateUp: p.act[row / 2] = __float2bfloat16_rn(silu_bf16(round_bf16(v)) * round_bf16(u)); break;
      default: p.h[row] = __float2bfloat16_rn(hv + round_bf16(v)); break;
    }
  }
};

// y = W . x over this block's pieces of a phase, x [K] in shared memory; epi(row, v, 0, r) or, for
// row pairs, epi(row, gate, up, 0) stores each finished row, where r = resid[row] (the residual
// stream's value, 0 without one).
// One counter per slot: the last warp to have read piece k's weights (into registers) refills its
// slot at once, so the ring's bytes in flight do not wait for the products, and marks the slot's
// round as read. Piece k - kFinishLag is finished by warp (k - kFinishLag) % kWarps once the
// piece after it is marked read (every warp wrote its partial sums of a piece before it read the
// next); the phase's last kFinishLag pieces after a block barrier. Every warp loads the residual
// values of the piece after the one it multiplies (raw bits, converted only where used), so the
// warp that finishes a piece never waits on the L2 for them (per-warp sums; the small shapes'
// per-thread path reads them when finishing).
template <int J>
__device__ __forceinline__ void stream_phase_j(const PersistentDecode& p, const Plan& plan, int ph, const Matrix& m,
                                               Ring& ring, const bf16* x, float* partial, const bf16* resid,
                                               const PhaseStore& epi) {
  const int vpr = m.K / 8, pieces = ring.pieces->first[ph + 1] - ring.pieces->first[ph];
  const int ctid = threadIdx.x, lane = ctid & 31;
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  float xr[J > 0 ? J : 1][8];
  if constexpr (J > 0) {
#pragma unroll
    for (int j = 0; j < J; ++j) unpack8(xv[ctid + kThreads * j], xr[j]);
  }
  const bool use_resid = resid && !p.stream_only;
  // Lane c: the raw residual bits of row c of piece k (rows c >= 32 are read when finished).
  auto resid_bits = [&](int k) -> unsigned short {
    if (!use_resid || k >= pieces) return 0;
    const int r = ring.pieces->row_of(ph, k);
    return lane < ring.pieces->count_of(ph, r) ? __ldcg(reinterpret_cast<const unsigned short*>(resid + r + lane)) : 0;
  };
  // Piece k's outputs from its partial sums (one warp).
  auto finish = [&](int k, float* part, unsigned short bits) {
    const int r = ring.pieces->row_of(ph, k), n = ring.pieces->count_of(ph, r);
    if (plan.cols == kWarps) {
      // Output c (a row, or a gate / up pair): lanes 0-7 hold the row's eight warp partials
      // (lanes 8-15 the up row's), summed by a fixed tree.
      const int outs = m.pairs ? n / 2 : n;
      for (int c = 0; c < outs; ++c) {
        const int row = m.pairs ? 2 * c + (lane >> 3) : c;
        float v = 0.f;
        if (lane < (m.pairs ? 16 : 8)) {
          v = part[row * kWarps + (lane & 7)];
          if (J == 0) part[row * kWarps + (lane & 7)] = 0.f;  // rows some warps skip
        }
        v += __shfl_xor_sync(0xffffffffu, v, 4);
        v += __shfl_xor_sync(0xffffffffu, v, 2);
        v += __shfl_xor_sync(0xffffffffu, v, 1);
        const float up = __shfl_sync(0xffffffffu, v, 8);
        const unsigned short hb = static_cast<unsigned short>(__shfl_sync(0xffffffffu, static_cast<unsigned>(bits), c & 31));
        if (lane == 0)
          epi(r + (m.pairs ? 2 * c : c), v, up, !use_resid ? 0.f : c < 32 ? bf16_bits_to_f32(hb) : residual_at(resid, r + c));
      }
    } else if (lane == 0) {
      // Per-thread sums (rows off 256-multiples: small shapes), the residual read here.
      for (int c = 0; c < (m.pairs ? n / 2 : n); ++c) {
        if (m.pairs) {
          const float g = take_row(part, 2 * c, plan.cols);
          epi(r + 2 * c, g, take_row(part, 2 * c + 1, plan.cols), 0.f);
        } else {
          epi(r + c, take_row(part, c, plan.cols), 0.f, use_resid ? residual_at(resid, r + c) : 0.f);
        }
      }
    }
  };
  // The last kFinishLag pieces (index 0: piece k - 1): partial-sum buffers, residual bits, slot
  // and round.
  unsigned short bits_next = resid_bits(0), bits_h[kFinishLag] = {};
  float* part_h[kFinishLag] = {};
  int slot_h[kFinishLag] = {}, round_h[kFinishLag] = {};
  for (int k = 0; k < pieces; ++k, ring.advance(plan.slots)) {
    const int r = ring.pieces->row_of(ph, k), n = ring.pieces->count_of(ph, r), s = ring.slot;
    const unsigned short bits = bits_next;
    bits_next = resid_bits(k + 1);
    mbar_wait(&ring.full[s], ring.round & 1);
    // Two partial-sum buffers per slot, by round: piece k is finished while the slot's next
    // piece may already be multiplied.
    float* part = partial + (s * 2 + (ring.round & 1)) * plan.rows_max * plan.cols;
    auto release = [&]() {
      __syncwarp();
      int last = 0;
      if (lane == 0) {
        __threadfence_block();  // this warp's partial sums of the pieces before before its arrival
        last = atomicAdd(&ring.read_warps[s], 1) == kWarps - 1;
        if (last) ring.read_warps[s] = 0;
      }
      if (!__shfl_sync(0xffffffffu, last, 0)) return;
      if (lane == 0) {
        ring.fetch(ring.it + plan.slots, s, p, plan);
        __threadfence_block();
        ring.read_round[s] = ring.round + 1;  // every warp has read it (and summed the pieces before)
      }
    };
    if (p.stream_only) release();
    else
      slot_products<J>(reinterpret_cast<const uint4*>(ring.base + static_cast<size_t>(s) * plan.slot_bytes), n, vpr, xv,
                       xr, part, plan.cols, release);
    // Piece k - kFinishLag is finished by warp (k - kFinishLag) % kWarps once every warp has read
    // the piece after it (and so written its sums of it): the extra work goes round the warps
    // instead of falling on the slowest reader, which would then stay the slowest and the last to
    // read every slot; the lag leaves the finishing warp little to wait for.
    if (k >= kFinishLag && (ctid >> 5) == (k - kFinishLag) % kWarps && !p.stream_only) {
      while (ring.read_round[slot_h[kFinishLag - 2]] <= round_h[kFinishLag - 2]) {
      }
      __threadfence_block();
      finish(k - kFinishLag, part_h[kFinishLag - 1], bits_h[kFinishLag - 1]);
    }
#pragma unroll
    for (int i = kFinishLag - 1; i > 0; --i)
      part_h[i] = part_h[i - 1], bits_h[i] = bits_h[i - 1], slot_h[i] = slot_h[i - 1], round_h[i] = round_h[i - 1];
    part_h[0] = part, bits_h[0] = bits, slot_h[0] = s, round_h[0] = ring.round;
  }
  __syncthreads();  // every warp's partial sums of the last pieces
  // The last kFinishLag pieces, one warp each.
  const int tail = ctid >> 5;
  if (!p.stream_only && tail < kFinishLag && pieces - 1 - tail >= 0) {
#pragma unroll
    for (int i = 0; i < kFinishLag; ++i)
      if (i == tail) finish(pieces - 1 - i, part_h[i], bits_h[i]);
  }
}

// One call site in the kernel (the phases' loop), so each J variant is compiled once per kernel.
__device__ __forceinline__ void stream_phase(const PersistentDecode& p, const Plan& plan, int ph, Ring& ring, const bf16* x,
                             float* partial) {
  const bf16* resid = ph == kO || ph == kDown ? p.h : nullptr;
  const PhaseStore epi{p, ph};
  const Matrix m = shape_of(p, ph);
  const int vpr = m.K / 8;
  const int J = plan.cols == kWarps && vpr % kThreads == 0 && plan.rows_max <= kFastRows ? vpr / kThreads : 0;
  switch (J) {
    case 1: return stream_phase_j<1>(p, plan, ph, m, ring, x, partial, resid, epi);
    case 2: return stream_phase_j<2>(p, plan, ph, m, ring, x, partial, resid, epi);
    case 3: return stream_phase_j<3>(p, plan, ph, m, ring, x, partial, resid, epi);
    case 4: return stream_phase_j<4>(p, plan, ph, m, ring, x, partial, resid, epi);
    case 6: return stream_phase_j<6>(p, plan, ph, m, ring, x, partial, resid, epi);
    default: return stream_phase_j<0>(p, plan, ph, m, ring, x, partial, resid, epi);
  }
}

// x = bf16(w * bf16(h * rstd)) over h [H] (linear_transform8's rounding), into shared memory. Up
// to kKeep 8-element pieces per thread stay in registers between the two passes.
constexpr int kKeep = 4;
__device__ void load_normed(const bf16* h, const float* norm_w, int H, float eps, bf16* x, float* red) {
  const int ctid = threadIdx.x;
  uint4 kept[kKeep];
  float ss = 0.f;
  auto add_squares = [&](const uint4& v) {
    float f[8];
    unpack8(v, f);
#pragma unroll
    for (int e = 0; e < 8; ++e) ss = fmaf(f[e], f[e], ss);
  };
#pragma unroll
  for (int c = 0; c < kKeep; ++c)
    if (ctid + c * kThreads < H / 8) add_squares(kept[c] = ld_cg16(h + 8 * (ctid + c * kThreads)));
  for (int i = ctid + kKeep * kThreads; i < H / 8; i += kThreads) add_squares(ld_cg16(h + 8 * i));
  ss = warp_sum(ss);
  if ((ctid & 31) == 0) red[ctid >> 5] = ss;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kWarps; ++w) total += red[w];
  const float rstd = rsqrtf(total / static_cast<float>(H) + eps);
  LinearIn in;
  in.norm_w = norm_w;
  auto store = [&](int i, const uint4& v) {
    float f[8];
    unpack8(v, f);
    linear_transform8(in, 8 * i, rstd, f);
    reinterpret_cast<uint4*>(x)[i] = pack8(f);
  };
#pragma unroll
  for (int c = 0; c < kKeep; ++c)
    if (ctid + c * kThreads < H / 8) store(ctid + c * kThreads, kept[c]);
  for (int i = ctid + kKeep * kThreads; i < H / 8; i += kThreads) store(i, ld_cg16(h + 8 * i));
  __syncthreads();  // x complete; red free again
}

__device__ void load_plain(const bf16* src, int K, bf16* x) {
  for (int i = threadIdx.x; i < K / 8; i += kThreads) reinterpret_cast<uint4*>(x)[i] = ld_cg16(src + 8 * i);
  __syncthreads();
}

__device__ __forceinline__ void grid_sync(const PersistentDecode& p, unsigned& k) {
  __syncthreads();
  if (threadIdx.x == 0) grid_barrier_thread(p.sync, k, gridDim.x);
  ++k;
  __syncthreads();
}

template <int P>
__global__ void __launch_bounds__(kThreads, 1) decode_persistent_kernel(PersistentDecode p, Plan plan) {
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ float red[kWarps];
  __shared__ Pieces pieces;
  __shared__ int read_warps[kMaxSlots];
  __shared__ int read_round[kMaxSlots];
  Ring ring;
  ring.base = smem;
  ring.full = reinterpret_cast<uint64_t*>(smem + plan.bar_off);
  ring.read_warps = read_warps;
  ring.read_round = read_round;
  ring.pieces = &pieces;
  const bf16** table = reinterpret_cast<const bf16**>(smem + plan.table_off);
  ring.table = table;
  bf16* x = reinterpret_cast<bf16*>(smem + plan.x_off);
  uint8_t* scratch = smem + plan.x_off;  // the attention phase's; x is not live then
  float* partial = reinterpret_cast<float*>(smem + plan.partial_off);
  if (threadIdx.x == 0) {
    for (int s = 0; s < plan.slots; ++s) {
      mbar_init(&ring.full[s], 1);
      read_warps[s] = 0;
      read_round[s] = 0;
    }
    mbar_fence_init();
    pieces.init(p, plan);
  }
  for (int i = threadIdx.x; i < min(p.num_layers, kTableLayers) * kPhases; i += kThreads)
    table[i] = weight_of(p.layers[i / kPhases], i % kPhases);
  for (int i = threadIdx.x; i < 2 * plan.slots * plan.rows_max * plan.cols; i += kThreads) partial[i] = 0.f;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int s = 0; s < plan.slots; ++s) ring.fetch(s, s, p, plan);

  const int H = p.hidden, I = p.intermediate, A = p.heads * p.head_dim;
  unsigned barriers = 0;
  for (int l = 0; l < p.num_layers; ++l) {
    const PersistentLayer& L = p.layers[l];
    long long* stamps = p.trace && blockIdx.x == 0 && threadIdx.x == 0 ? p.trace + l * kPersistentTraceStamps : nullptr;
    auto phase_end = [&](int k) {
      if (stamps) stamps[2 * k] = clock64();
      if (l + 1 < p.num_layers || k < 4) grid_sync(p, barriers);
      if (stamps) stamps[2 * k + 1] = clock64();
    };
    // The four products in one loop: stream_phase is inlined once (its variants are large).
    for (int ph = 0; ph < kPhases; ++ph) {
      switch (ph) {
        case kQkv:
          load_normed(p.h, L.input_norm, H, p.eps, x, red);
          prefetch_attention_kv<P>(p, L);
          break;
        case kO:
          if (!p.stream_only) attention_phase<P>(p, L, scratch);
          phase_end(1);
          load_plain(p.attn, A, x);
          break;
        case kGateUp: load_normed(p.h, L.post_norm, H, p.eps, x, red); break;
        default: load_plain(p.act, I, x); break;
      }
      stream_phase(p, plan, ph, ring, x, partial);
      phase_end(ph == kQkv ? 0 : ph + 1);  // no barrier after the last layer's down
    }
  }
  if (threadIdx.x == 0) grid_exit_thread(p.sync, p.sync + 1, gridDim.x);
}

constexpr size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }
constexpr int kMinSlotBytes = 32 * 1024;

// The launch plan for this shape within `smem_limit` bytes; slots = 0 when it does not fit.
Plan make_plan(const PersistentDecode& p, int smem_limit) {
  Plan plan;
  const int H = p.hidden, I = p.intermediate, A = p.heads * p.head_dim, G = p.heads / p.kv_heads;
  // Slots of at least 32 KB (or kFastRows of the shortest rows, the most the register path
  // unrolls): the stream's rate depends on the bytes in flight per SM (a bulk copy takes
  // microseconds to land under load), and a slot's fixed costs are per slot.
  const int fill = std::min(kMinSlotBytes, kFastRows * 2 * std::min({H, A, I}));
  plan.slot_bytes = static_cast<int>(round_up(std::max({4 * H, 2 * A, 2 * I, fill}), 128));
  plan.rows_max = plan.slot_bytes / (2 * std::min({H, A, I}));
  plan.cols = H % 256 == 0 && I % 256 == 0 && A % 256 == 0 ? kWarps : kThreads;
  const size_t x_bytes = round_up(std::max<size_t>(std::max({H, I, A}) * 2, attention_scratch_bytes(G, p.head_dim)), 128);
  // Per slot: the weights, the partial sums of its rows and its mbarrier.
  const size_t per_slot = plan.slot_bytes + static_cast<size_t>(plan.rows_max) * plan.cols * 8 + 8;
  const size_t table_bytes = kTableLayers * kPhases * sizeof(void*);
  const size_t fixed = x_bytes + table_bytes + 4 * 128 + 64;  // alignment, static shared memory
  const long long room = static_cast<long long>(smem_limit) - static_cast<long long>(fixed);
  plan.slots = room > 0 ? static_cast<int>(std::min<long long>(kMaxSlots, room / static_cast<long long>(per_slot))) : 0;
  // A piece is finished kFinishLag pieces after it was read, and its partial-sum buffer is reused
  // 2 slots pieces later: slots > kFinishLag keeps the finish ahead of the reuse.
  if (plan.slots < kFinishLag + 1) {
    plan.slots = 0;
    return plan;
  }
  const size_t partial_bytes = round_up(static_cast<size_t>(plan.slots) * plan.rows_max * plan.cols * 8, 128);
  plan.x_off = static_cast<int>(round_up(static_cast<size_t>(plan.slots) * plan.slot_bytes, 128));
  plan.partial_off = plan.x_off + static_cast<int>(x_bytes);
  plan.table_off = plan.partial_off + static_cast<int>(partial_bytes);
  plan.bar_off = plan.table_off + static_cast<int>(table_bytes);
  plan.smem = plan.bar_off + plan.slots * 8;
  return plan;
}

// The opt-in shared memory per block of the current device, less the kernel's static shared
// memory and the system's reserve (queried once per device: the launcher runs every step).
int smem_optin_limit() {
  static std::atomic<int> cached[16] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  std::atomic<int>* slot = dev < 16 ? &cached[dev] : nullptr;
  if (slot && slot->load() > 0) return slot->load();
  int bytes = 0;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return 0;
  if (slot) slot->store(bytes - 1024);
  return bytes - 1024;
}

// The launch plan, or slots = 0 where the shape is not supported.
Plan plan_for(int hidden, int intermediate, int heads, int kv_heads, KvGeometry geo) {
  const int hd = geo.head_dim;
  const bool ok = geo.dtype == KvDtype::bf16 && (hd == 32 || hd == 64 || hd == 128 || hd == 256) && kv_heads > 0 &&
                  heads % kv_heads == 0 && heads / kv_heads <= kMaxGroup && heads / kv_heads * hd <= 1024 &&
                  hidden % 8 == 0 && intermediate % 8 == 0 && geo.nkv == kv_heads;
  if (!ok) return Plan();
  PersistentDecode p;
  p.hidden = hidden, p.intermediate = intermediate, p.heads = heads, p.kv_heads = kv_heads, p.head_dim = hd;
  return make_plan(p, smem_optin_limit());
}

}  // namespace
}  // namespace persistent

bool decode_persistent_supported(int hidden, int intermediate, int heads, int kv_heads, KvGeometry geo) {
  return persistent::plan_for(hidden, intermediate, heads, kv_heads, geo).slots > 0;
}

size_t decode_persistent_partials(int heads, int head_dim, int splits) {
  return static_cast<size_t>(heads) * splits * (head_dim + 2);
}

int decode_persistent_splits(int max_context, int kv_heads, int num_sms) {
  // About one item per block at long contexts, at least ~32 keys per split.
  // (at most 128: the merge keeps every split's max and denominator in the attention scratch)
  return std::max(1, std::min({ceil_div(std::max(1, max_context), 32), num_sms / std::max(1, kv_heads), 128}));
}

Status decode_persistent(const PersistentDecode& p, int num_sms, const Exec& ex) {
  using namespace persistent;
  const Plan plan = plan_for(p.hidden, p.intermediate, p.heads, p.kv_heads, p.geo);
  if (plan.slots == 0)
    return invalid("decode_persistent", "shape not supported (bf16 cache, head_dim 32/64/128/256, <= 8 query heads per kv head)");
  if (p.splits < 1) return invalid("decode_persistent", "splits must be at least 1");
  void (*kernel)(PersistentDecode, Plan) = nullptr;
  switch (p.head_dim) {
    case 32: kernel = decode_persistent_kernel<1>; break;
    case 64: kernel = decode_persistent_kernel<2>; break;
    case 128: kernel = decode_persistent_kernel<4>; break;
    default: kernel = decode_persistent_kernel<8>; break;
  }
  GRPST_TRY(allow_smem("decode_persistent", kernel, plan.smem));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(num_sms);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = plan.smem;
  cfg.stream = ex.stream;
  // Co-resident blocks are what the grid barriers need: a cooperative launch guarantees them
  // (and fails instead of hanging when they cannot be).
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, p, plan);
  if (e != cudaSuccess) return cuda_error("decode_persistent", e);
  return ok_status();
}

}  // namespace grpst::cuda
