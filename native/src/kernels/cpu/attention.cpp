// Attention of one query row over a paged KV cache, for the G query heads that share one KV
// head (GQA): scores = q.k * scale, softmax in fp32, out = sum p * v. Keys are read once for
// all G heads. The computation depends only on this row's query and its context, never on the
// rest of the batch or on how a prompt was chunked.
#include <algorithm>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

namespace {

constexpr int kMaxGroup = 16;

inline VF load_elem(const float* p) { return vload(p); }
inline VF load_elem(const uint16_t* p) { return vload_bf16(p); }
inline VF load_elem_n(const float* p, int n) { return vload_n(p, n); }
inline VF load_elem_n(const uint16_t* p, int n) { return vload_bf16_n(p, n); }

template <class Elem>
void attention_group(const AttentionArgs& a, int g0, int G) {
  const int D = a.head_dim, L = a.ctx_len, bs = a.block_size;
  const Elem* kpool = static_cast<const Elem*>(a.k_pool);
  const Elem* vpool = static_cast<const Elem*>(a.v_pool);
  const float* q = a.q + int64_t(g0) * D;
  float* scores = a.scratch;  // [G, L]

  // scores[g, j] = (q_g . k_j) * scale. Keys are stored transposed per block ([head_dim][slot]),
  // so a vector holds one dimension of consecutive keys: no horizontal sums.
  for (int j0 = 0, blk = 0; j0 < L; j0 += bs, blk++) {
    const Elem* kb = kpool + int64_t(a.block_table[blk]) * a.block_stride + a.head_offset;
    const int nj = std::min(bs, L - j0);
    for (int s0 = 0; s0 < nj; s0 += kWidth) {
      const int cnt = std::min(kWidth, nj - s0);
      VF acc[kMaxGroup];
      for (int g = 0; g < G; g++) acc[g] = vzero();
      for (int d = 0; d < D; d++) {
        const Elem* kd = kb + int64_t(d) * bs + s0;
        VF kv = cnt == kWidth ? load_elem(kd) : load_elem_n(kd, cnt);
        for (int g = 0; g < G; g++) acc[g] = vfma(vset1(q[g * D + d]), kv, acc[g]);
      }
      for (int g = 0; g < G; g++) vstore_n(scores + int64_t(g) * L + j0 + s0, vmul(acc[g], vset1(a.scale)), cnt);
    }
  }

  // softmax over each row of scores
  const int lfull = L / kWidth * kWidth, lrest = L - lfull;
  for (int g = 0; g < G; g++) {
    float* s = scores + int64_t(g) * L;
    VF m = vset1(-INFINITY);
    for (int j = 0; j < lfull; j += kWidth) m = vmax(m, vload(s + j));
    float mx = vhmax(m);
    for (int j = lfull; j < L; j++) mx = std::max(mx, s[j]);
    VF vmx = vset1(mx), sum = vzero();
    for (int j = 0; j < lfull; j += kWidth) {
      VF e = vexp_neg(vsub(vload(s + j), vmx));
      vstore(s + j, e);
      sum = vadd(sum, e);
    }
    if (lrest) {
      VF e = vexp_neg(vsub(vload_n(s + lfull, lrest), vmx));
      vstore_n(s + lfull, e, lrest);
      sum = vadd(sum, vload_n(s + lfull, lrest));
    }
    VF inv = vset1(1.0f / vsum(sum));
    for (int j = 0; j < lfull; j += kWidth) vstore(s + j, vmul(vload(s + j), inv));
    if (lrest) vstore_n(s + lfull, vmul(vload_n(s + lfull, lrest), inv), lrest);
  }

  // out[g] = sum_j p[g, j] * v_j, block by block, one vector column of the head at a time
  float* out = a.out + int64_t(g0) * D;
  for (int g = 0; g < G; g++) std::fill(out + int64_t(g) * D, out + int64_t(g + 1) * D, 0.0f);
  for (int j0 = 0, blk = 0; j0 < L; j0 += bs, blk++) {
    const Elem* vb = vpool + int64_t(a.block_table[blk]) * a.block_stride + a.head_offset;
    const int nj = std::min(bs, L - j0);
    for (int d = 0; d < D; d += kWidth) {
      const int dn = std::min(kWidth, D - d);
      VF acc[kMaxGroup];
      for (int g = 0; g < G; g++) acc[g] = vload_n(out + g * D + d, dn);
      for (int jj = 0; jj < nj; jj++) {
        VF vv = dn == kWidth ? load_elem(vb + int64_t(jj) * D + d) : load_elem_n(vb + int64_t(jj) * D + d, dn);
        for (int g = 0; g < G; g++) acc[g] = vfma(vset1(scores[int64_t(g) * L + j0 + jj]), vv, acc[g]);
      }
      for (int g = 0; g < G; g++) vstore_n(out + g * D + d, acc[g], dn);
    }
  }
}

}  // namespace

void attention(const AttentionArgs& a) {
  // Groups wider than kMaxGroup (unusual GQA ratios) run as several narrower groups.
  for (int g0 = 0; g0 < a.group; g0 += kMaxGroup) {
    int G = std::min(kMaxGroup, a.group - g0);
    if (a.kv_bf16)
      attention_group<uint16_t>(a, g0, G);
    else
      attention_group<float>(a, g0, G);
  }
}

}  // namespace grpst::cpu::GRPST_ISA
