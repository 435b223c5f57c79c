// Attention over a paged KV cache for one KV head and the G query heads that share it (GQA), for
// one or several query rows at consecutive positions of one sequence: scores = q.k * scale,
// softmax in fp32, out = sum p * v. Every K/V vector loaded is used by all rows and heads of a
// pass. Each output element is accumulated in the same order whatever the number of rows or
// heads processed together, so a row's result never depends on the batch or on prompt chunking.
// Quantized pools (fp8 e4m3, int8) are widened to fp32 as they are loaded, in the inner loops; their
// per-tensor scales are applied once per score (k_scale, with the softmax scale) and once per
// probability (v_scale, with the softmax normalizer) instead of once per element: mathematically
// the same products, without a multiply per cached element.
#include <algorithm>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

namespace {

// G is a template parameter so the accumulators live in registers; wider groups are split.
constexpr int kMaxGroup = 8;
// Vector accumulators a pass keeps live (AVX-512 has 32 registers, AVX2 16).
constexpr int kAccRegs = kWidth == 16 ? 16 : 8;
// Rows x heads x key chunks of a several-row pass's score loop: eight accumulators keep both FMA
// pipes busy through the FMA latency; sixteen spilled on AVX-512 (measured). On AVX2 (an
// AVX2-only AMD EPYC) four rows of two heads in one pass, each key loaded once for all eight, ran a
// 30k-token prompt of the tiny model 28% faster than two rows; two rows with two key chunks
// each 17% faster than with one (8k tokens).
constexpr int kRowHeadAccs = 8;

/** A run of up to kWidth consecutive keys inside one block. */
template <class Elem>
struct KeyChunk {
  const Elem* k;  // first key's slot in the transposed block: element d of key s at k[d * bs + s]
  int j;          // position of the first key
  int cnt;        // keys in the chunk
};

/**
 * Scores of R rows x G heads against S key chunks: scores[r][g][j] = (q . k_j) * scale, one
 * accumulator per (row, head, chunk) running over d in order. Row r stores only the keys its
 * causal context covers (positions < ctx0 + r).
 */
template <int G, int R, int S, class Elem>
inline void score_chunks(const float* q, int64_t q_stride, int D, int bs, const KeyChunk<Elem>* ch, int nch,
                         float scale, int ctx0, float* scores, int64_t ld) {
  VF acc[R][G][S];
  for (int r = 0; r < R; r++)
    for (int g = 0; g < G; g++)
      for (int c = 0; c < S; c++) acc[r][g][c] = vzero();
  for (int d = 0; d < D; d++) {
    VF kv[S];
    for (int c = 0; c < S; c++) {
      const Elem* kd = ch[c].k + int64_t(d) * bs;
      kv[c] = c < nch ? (ch[c].cnt == kWidth ? load_elem(kd) : load_elem_n(kd, ch[c].cnt)) : vzero();
    }
    for (int r = 0; r < R; r++)
      for (int g = 0; g < G; g++) {
        const VF qv = vset1(q[r * q_stride + g * D + d]);
        for (int c = 0; c < S; c++) acc[r][g][c] = vfma(qv, kv[c], acc[r][g][c]);
      }
  }
  for (int r = 0; r < R; r++)
    for (int c = 0; c < nch; c++) {
      const int n = std::min(ch[c].cnt, ctx0 + r - ch[c].j);
      if (n <= 0) continue;
      for (int g = 0; g < G; g++)
        vstore_n(scores + (int64_t(r) * G + g) * ld + ch[c].j, vmul(acc[r][g][c], vset1(scale)), n);
    }
}

/** In place: s[0, n) <- softmax(s) * post (post = 1 gives exactly the softmax). */
inline void softmax_row(float* s, int n, float post) {
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
  VF inv = vset1(post / vsum(sum));
  for (int j = 0; j < full; j += kWidth) vstore(s + j, vmul(vload(s + j), inv));
  if (rest) vstore_n(s + full, vmul(vload_n(s + full, rest), inv), rest);
}

/**
 * out[r][g] += sum_j p[r][g][j] * v_j over one block ([slot][head_dim]), CH vector columns of the
 * head at a time; row r takes the block's first nj[r] keys.
 */
template <int G, int R, int CH, class Elem>
inline void block_values(const float* probs, int64_t ld, int j0, const Elem* vb, int D, const int* nj, int nj_max,
                         float* out, int64_t out_stride) {
  for (int d0 = 0; d0 < D; d0 += CH * kWidth) {
    int dn[CH];
    for (int c = 0; c < CH; c++) dn[c] = std::max(0, std::min(kWidth, D - (d0 + c * kWidth)));
    VF acc[R][G][CH];
    for (int r = 0; r < R; r++)
      for (int g = 0; g < G; g++)
        for (int c = 0; c < CH; c++)
          acc[r][g][c] = dn[c] ? vload_n(out + r * out_stride + g * D + d0 + c * kWidth, dn[c]) : vzero();
    // Keys that every row takes, with whole vectors, run without per-key checks (the common case:
    // head_dim a multiple of CH vectors); the rest with them. The same FMAs in the same order; the
    // checks in the loop made an 8k-token prompt's attention 1.3x slower on AVX2 (measured).
    bool whole = true;
    for (int c = 0; c < CH; c++) whole = whole && dn[c] == kWidth;
    int j_all = nj_max;
    for (int r = 0; r < R; r++) j_all = std::min(j_all, nj[r]);
    int j = 0;
    if (whole) {
      for (; j < j_all; j++) {
        const Elem* vr = vb + int64_t(j) * D + d0;
        VF vv[CH];
        for (int c = 0; c < CH; c++) vv[c] = load_elem(vr + c * kWidth);
        for (int r = 0; r < R; r++)
          for (int g = 0; g < G; g++) {
            const VF p = vset1(probs[(int64_t(r) * G + g) * ld + j0 + j]);
            for (int c = 0; c < CH; c++) acc[r][g][c] = vfma(p, vv[c], acc[r][g][c]);
          }
      }
    }
    for (; j < nj_max; j++) {
      const Elem* vr = vb + int64_t(j) * D + d0;
      VF vv[CH];
      for (int c = 0; c < CH; c++)
        vv[c] = dn[c] == kWidth ? load_elem(vr + c * kWidth) : dn[c] ? load_elem_n(vr + c * kWidth, dn[c]) : vzero();
      for (int r = 0; r < R; r++) {
        if (j >= nj[r]) continue;
        for (int g = 0; g < G; g++) {
          const VF p = vset1(probs[(int64_t(r) * G + g) * ld + j0 + j]);
          for (int c = 0; c < CH; c++) acc[r][g][c] = vfma(p, vv[c], acc[r][g][c]);
        }
      }
    }
    for (int r = 0; r < R; r++)
      for (int g = 0; g < G; g++)
        for (int c = 0; c < CH; c++)
          if (dn[c]) vstore_n(out + r * out_stride + g * D + d0 + c * kWidth, acc[r][g][c], dn[c]);
  }
}

/** Rows [r0, r0 + R) and heads [g0, g0 + G) of the call. */
template <int G, int R, class Elem>
void attention_rows(const AttentionArgs& a, int g0, int r0) {
  // One row: several key chunks and head columns in flight; several rows: key chunks up to
  // kRowHeadAccs accumulators. An element's arithmetic is the same whatever S, CH or R.
  constexpr int S = R == 1 ? std::max(1, kAccRegs / G) : std::max(1, kRowHeadAccs / (G * R));
  constexpr int CH = std::max(1, kAccRegs / (G * R));
  const int D = a.head_dim, bs = a.block_size;
  const int ctx0 = a.ctx_len + r0;  // first row's context; row r sees ctx0 + r keys
  const int L = ctx0 + R - 1;       // the longest context among these rows
  const float qk_scale = a.scale * a.k_scale;  // k_scale is 1 for float pools: the same bits
  const Elem* kpool = static_cast<const Elem*>(a.k_pool);
  const Elem* vpool = static_cast<const Elem*>(a.v_pool);
  const float* q = a.q + r0 * a.row_stride + int64_t(g0) * D;
  float* scores = a.scratch;  // [R][G][L]

  KeyChunk<Elem> chunks[S];
  int nch = 0;
  for (int j0 = 0, blk = 0; j0 < L; j0 += bs, blk++) {
    const Elem* kb = kpool + int64_t(a.block_table[blk]) * a.block_stride + a.head_offset;
    const int nj = std::min(bs, L - j0);
    for (int s0 = 0; s0 < nj; s0 += kWidth) {
      chunks[nch++] = {kb + s0, j0 + s0, std::min(kWidth, nj - s0)};
      if (nch == S) {
        score_chunks<G, R, S>(q, a.row_stride, D, bs, chunks, nch, qk_scale, ctx0, scores, L);
        nch = 0;
      }
    }
  }
  if (nch) score_chunks<G, R, S>(q, a.row_stride, D, bs, chunks, nch, qk_scale, ctx0, scores, L);

  for (int r = 0; r < R; r++)
    for (int g = 0; g < G; g++) softmax_row(scores + (int64_t(r) * G + g) * L, ctx0 + r, a.v_scale);

  float* out = a.out + r0 * a.row_stride + int64_t(g0) * D;
  for (int r = 0; r < R; r++) std::fill(out + r * a.row_stride, out + r * a.row_stride + int64_t(G) * D, 0.0f);
  for (int j0 = 0, blk = 0; j0 < L; j0 += bs, blk++) {
    const Elem* vb = vpool + int64_t(a.block_table[blk]) * a.block_stride + a.head_offset;
    int nj[R];
    for (int r = 0; r < R; r++) nj[r] = std::max(0, std::min(bs, ctx0 + r - j0));
    block_values<G, R, CH>(scores, L, j0, vb, D, nj, std::min(bs, L - j0), out, a.row_stride);
  }
}

/** Splits the rows into passes of R rows, R as large as the register budget allows. */
template <int G, class Elem>
void attention_group(const AttentionArgs& a, int g0) {
  // Rows x heads up to kRowHeadAccs.
  constexpr int kMaxRows = std::max(1, std::min(4, kRowHeadAccs / G));
  int r0 = 0;
  while (r0 < a.rows) {
    const int left = a.rows - r0;
    if (kMaxRows >= 4 && left >= 4) {
      attention_rows<G, (kMaxRows >= 4 ? 4 : 1), Elem>(a, g0, r0);
      r0 += 4;
    } else if (kMaxRows >= 2 && left >= 2) {
      attention_rows<G, (kMaxRows >= 2 ? 2 : 1), Elem>(a, g0, r0);
      r0 += 2;
    } else {
      attention_rows<G, 1, Elem>(a, g0, r0);
      r0 += 1;
    }
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
  switch (a.kv_elem) {
    case KvElem::F32: attention_typed<float>(a); break;
    case KvElem::BF16: attention_typed<uint16_t>(a); break;
    case KvElem::FP8: attention_typed<uint8_t>(a); break;
    case KvElem::INT8: attention_typed<int8_t>(a); break;
  }
}

}  // namespace grpst::cpu::GRPST_ISA
