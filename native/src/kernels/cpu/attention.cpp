// Attention of one query row over a paged KV cache, for the G query heads that share one KV
// head (GQA): scores = q.k * scale, softmax in fp32, out = sum p * v. Keys are read once for
// all G heads. The computation depends only on this row's query and its context, never on the
// rest of the batch or on how a prompt was chunked.
#include <algorithm>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

namespace {

// G is a template parameter so the accumulators live in registers; wider groups are split.
constexpr int kMaxGroup = 8;
// Vector accumulators a pass may keep live (AVX-512 has 32 registers, AVX2 16).
constexpr int kAccRegs = kWidth == 16 ? 16 : 8;

inline VF load_elem(const float* p) { return vload(p); }
inline VF load_elem(const uint16_t* p) { return vload_bf16(p); }
inline VF load_elem_n(const float* p, int n) { return vload_n(p, n); }
inline VF load_elem_n(const uint16_t* p, int n) { return vload_bf16_n(p, n); }

/**
 * scores[g, j] = (q_g . k_j) * scale for one block's keys, stored transposed ([head_dim][slot]):
 * a vector holds one dimension of kWidth consecutive keys. P interleaved partial sums per head
 * (over d mod P) keep enough independent FMA chains in flight; they are added in a fixed order.
 */
template <int G, class Elem>
inline void block_scores(const float* q, const Elem* kb, int D, int bs, int nj, float scale, float* scores,
                         int64_t ld) {
  constexpr int P = std::max(1, std::min(4, kAccRegs / G));
  for (int s0 = 0; s0 < nj; s0 += kWidth) {
    const int cnt = std::min(kWidth, nj - s0);
    VF acc[G][P];
    for (int g = 0; g < G; g++)
      for (int p = 0; p < P; p++) acc[g][p] = vzero();
    int d = 0;
    for (; d + P <= D; d += P) {
      for (int p = 0; p < P; p++) {
        const Elem* kd = kb + int64_t(d + p) * bs + s0;
        VF kv = cnt == kWidth ? load_elem(kd) : load_elem_n(kd, cnt);
        for (int g = 0; g < G; g++) acc[g][p] = vfma(vset1(q[g * D + d + p]), kv, acc[g][p]);
      }
    }
    for (; d < D; d++) {
      const Elem* kd = kb + int64_t(d) * bs + s0;
      VF kv = cnt == kWidth ? load_elem(kd) : load_elem_n(kd, cnt);
      for (int g = 0; g < G; g++) acc[g][0] = vfma(vset1(q[g * D + d]), kv, acc[g][0]);
    }
    for (int g = 0; g < G; g++) {
      VF sum = acc[g][0];
      for (int p = 1; p < P; p++) sum = vadd(sum, acc[g][p]);
      vstore_n(scores + g * ld + s0, vmul(sum, vset1(scale)), cnt);
    }
  }
}

/** out[g, :] += sum_j p[g, j] * v_j over one block ([slot][head_dim]). */
template <int G, class Elem>
inline void block_values(const float* probs, int64_t ld, const Elem* vb, int D, int nj, float* out) {
  constexpr int CH = std::max(1, kAccRegs / G);  // vector columns of the head per pass
  for (int d0 = 0; d0 < D; d0 += CH * kWidth) {
    VF acc[G][CH];
    int dn[CH];
    for (int c = 0; c < CH; c++) dn[c] = std::max(0, std::min(kWidth, D - (d0 + c * kWidth)));
    for (int g = 0; g < G; g++)
      for (int c = 0; c < CH; c++) acc[g][c] = dn[c] ? vload_n(out + g * D + d0 + c * kWidth, dn[c]) : vzero();
    for (int j = 0; j < nj; j++) {
      const Elem* vr = vb + int64_t(j) * D + d0;
      for (int c = 0; c < CH; c++) {
        if (!dn[c]) continue;
        VF vv = dn[c] == kWidth ? load_elem(vr + c * kWidth) : load_elem_n(vr + c * kWidth, dn[c]);
        for (int g = 0; g < G; g++) acc[g][c] = vfma(vset1(probs[g * ld + j]), vv, acc[g][c]);
      }
    }
    for (int g = 0; g < G; g++)
      for (int c = 0; c < CH; c++)
        if (dn[c]) vstore_n(out + g * D + d0 + c * kWidth, acc[g][c], dn[c]);
  }
}

/** In place: s[0, n) <- softmax(s). */
inline void softmax_row(float* s, int n) {
  const int full = n / kWidth * kWidth, rest = n - full;
  VF m = vset1(-INFINITY);
  for (int j = 0; j < full; j += kWidth) m = vmax(m, vload(s + j));
  float mx = vhmax(m);
  for (int j = full; j < n; j++) mx = std::max(mx, s[j]);
  VF vmx = vset1(mx), sum = vzero();
  for (int j = 0; j < full; j += kWidth) {
    VF e = vexp_neg(vsub(vload(s + j), vmx));
    vstore(s + j, e);
    sum = vadd(sum, e);
  }
  if (rest) {
    VF e = vexp_neg(vsub(vload_n(s + full, rest), vmx));
    vstore_n(s + full, e, rest);
    sum = vadd(sum, vload_n(s + full, rest));
  }
  VF inv = vset1(1.0f / vsum(sum));
  for (int j = 0; j < full; j += kWidth) vstore(s + j, vmul(vload(s + j), inv));
  if (rest) vstore_n(s + full, vmul(vload_n(s + full, rest), inv), rest);
}

template <int G, class Elem>
void attention_group(const AttentionArgs& a, int g0) {
  const int D = a.head_dim, L = a.ctx_len, bs = a.block_size;
  const Elem* kpool = static_cast<const Elem*>(a.k_pool);
  const Elem* vpool = static_cast<const Elem*>(a.v_pool);
  const float* q = a.q + int64_t(g0) * D;
  float* scores = a.scratch;  // [G, L]
  for (int j0 = 0, blk = 0; j0 < L; j0 += bs, blk++) {
    const Elem* kb = kpool + int64_t(a.block_table[blk]) * a.block_stride + a.head_offset;
    block_scores<G>(q, kb, D, bs, std::min(bs, L - j0), a.scale, scores + j0, L);
  }
  for (int g = 0; g < G; g++) softmax_row(scores + int64_t(g) * L, L);
  float* out = a.out + int64_t(g0) * D;
  std::fill(out, out + int64_t(G) * D, 0.0f);
  for (int j0 = 0, blk = 0; j0 < L; j0 += bs, blk++) {
    const Elem* vb = vpool + int64_t(a.block_table[blk]) * a.block_stride + a.head_offset;
    block_values<G>(scores + j0, L, vb, D, std::min(bs, L - j0), out);
  }
}

template <class Elem>
void attention_typed(const AttentionArgs& a) {
  for (int g0 = 0; g0 < a.group; g0 += kMaxGroup) {
    switch (std::min(kMaxGroup, a.group - g0)) {
      case 1: attention_group<1, Elem>(a, g0); break;
      case 2: attention_group<2, Elem>(a, g0); break;
      case 3: attention_group<3, Elem>(a, g0); break;
      case 4: attention_group<4, Elem>(a, g0); break;
      case 5: attention_group<5, Elem>(a, g0); break;
      case 6: attention_group<6, Elem>(a, g0); break;
      case 7: attention_group<7, Elem>(a, g0); break;
      default: attention_group<8, Elem>(a, g0); break;
    }
  }
}

}  // namespace

void attention(const AttentionArgs& a) {
  if (a.kv_bf16)
    attention_typed<uint16_t>(a);
  else
    attention_typed<float>(a);
}

}  // namespace grpst::cpu::GRPST_ISA
