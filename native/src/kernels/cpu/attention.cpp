// Attention over a paged KV cache for one KV head and the G query heads that share it (GQA), for
// one or several query rows at consecutive positions of one sequence: scores = q.k * scale,
// softmax in fp32, out = sum p * v, in flash attention's order: key tile by key tile with a
// running max and sum per row and head, so a tile's K/V is read from memory once for all rows
// and no row's scores outgrow a tile. Each output element is accumulated in the same order
// whatever the number of rows or heads processed together (tiles sit at fixed key positions), so a
// row's result never depends on the batch or on prompt chunking.
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
// Keys per online-softmax step: a tile's K and V (64 keys x 128 dims of bf16 on AVX2: 32 KB) stay
// in L1 while every pass of rows uses them. Eight vectors of keys: a one-row pass's score loop
// takes up to kAccRegs / G chunks, and with AVX-512's 16-key vectors a 64-key tile left half of
// them empty (a decode row of two heads 1.3x slower on a Xeon, measured).
constexpr int kKeyTile = std::max(64, 8 * kWidth);
// Row-heads of one value pass: four, each with kAccRegs / 4 vector columns of the head (two on
// AVX2: per key two V loads and four probability broadcasts for eight FMAs, against one and eight
// with a score pass's eight row-heads: 1.07-1.2x on the AVX2 EPYC, measured with the key tiles).
constexpr int kValueRowHeads = 4;

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
                         float scale, int ctx0, int j_base, float* scores, int64_t ld) {
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
        vstore_n(scores + (int64_t(r) * G + g) * ld + (ch[c].j - j_base), vmul(acc[r][g][c], vset1(scale)), n);
    }
}

/**
 * One online-softmax step of one row and head over a key tile, in place: s[0, n) <- exp(s -
 * m'), where m' = max(m, max s) becomes the running max m; the running sum l becomes l * alpha +
 * sum exp(s - m'). Returns alpha = exp(m - m'), by which the row's output must be rescaled.
 */
inline float softmax_tile(float* s, int n, float& m, float& l) {
  const int full = n / kWidth * kWidth, rest = n - full;
  VF mv = vset1(-INFINITY);
  for (int j = 0; j < full; j += kWidth) mv = vmax(mv, vload(s + j));
  float mx = vhmax(mv);
  for (int j = full; j < n; j++) mx = std::max(mx, s[j]);
  const float m_new = std::max(m, mx);
  const float alpha = std::exp(m - m_new);  // 0 at the first tile (m = -inf)
  VF vmx = vset1(m_new), sum = vzero();
  for (int j = 0; j < full; j += kWidth) {
    VF e = vexp_neg(vsub(vload(s + j), vmx));
    vstore(s + j, e);
    sum = vadd(sum, e);
  }
  if (rest) {
    VF e = vexp_neg(vsub(vload_n(s + full, rest), vmx));
    vstore_n(s + full, e, rest);
    sum = vadd(sum, vload_n(s + full, rest));  // the stored lanes only
  }
  l = l * alpha + vsum(sum);
  m = m_new;
  return alpha;
}

/** x[0, n) *= f. */
inline void scale_row(float* x, int n, float f) {
  const int full = n / kWidth * kWidth;
  const VF vf = vset1(f);
  for (int j = 0; j < full; j += kWidth) vstore(x + j, vmul(vload(x + j), vf));
  for (int j = full; j < n; j++) x[j] *= f;
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

/**
 * One key tile [t0, t1) for rows [r0, r0 + R) and heads [g0, g0 + G) of the call: their scores
 * into buf ([R][G][kKeyTile]), the online softmax step, and the tile's values added into out.
 */
template <int G, int R, class Elem>
void tile_pass(const AttentionArgs& a, int g0, int r0, int t0, int t1, float* buf, float* run_max, float* run_sum) {
  // One row: several key chunks and head columns in flight; several rows: key chunks up to
  // kRowHeadAccs accumulators. An element's arithmetic is the same whatever S, CH or R.
  constexpr int S = std::min(kKeyTile / kWidth, R == 1 ? std::max(1, kAccRegs / G) : std::max(1, kRowHeadAccs / (G * R)));
  // Values: VR rows of a pass at a time (R divides by VR), VCH vector columns each.
  constexpr int VR = R == 1 ? 1 : std::max(1, std::min(R, kValueRowHeads / G));
  constexpr int VCH = std::max(1, kAccRegs / (G * VR));
  const int D = a.head_dim, bs = a.block_size;
  const int ctx0 = a.ctx_len + r0;              // first row's context; row r sees ctx0 + r keys
  const int tend = std::min(t1, ctx0 + R - 1);  // the last key any of these rows takes, + 1
  if (tend <= t0) return;
  const float qk_scale = a.scale * a.k_scale;  // k_scale is 1 for float pools: the same bits
  const Elem* kpool = static_cast<const Elem*>(a.k_pool);
  const Elem* vpool = static_cast<const Elem*>(a.v_pool);
  const float* q = a.q + r0 * a.row_stride + int64_t(g0) * D;
  float* out = a.out + r0 * a.row_stride + int64_t(g0) * D;

  // Scores, in chunks of up to kWidth keys inside one block.
  KeyChunk<Elem> chunks[S];
  int nch = 0;
  for (int js = t0; js < tend;) {
    const int blk = js / bs, off = js - blk * bs, seg = std::min(tend, (blk + 1) * bs) - js;
    const Elem* kb = kpool + int64_t(a.block_table[blk]) * a.block_stride + a.head_offset + off;
    for (int s0 = 0; s0 < seg; s0 += kWidth) {
      chunks[nch++] = {kb + s0, js + s0, std::min(kWidth, seg - s0)};
      if (nch == S) {
        score_chunks<G, R, S>(q, a.row_stride, D, bs, chunks, nch, qk_scale, ctx0, t0, buf, kKeyTile);
        nch = 0;
      }
    }
    js += seg;
  }
  if (nch) score_chunks<G, R, S>(q, a.row_stride, D, bs, chunks, nch, qk_scale, ctx0, t0, buf, kKeyTile);

  // The online softmax step: probabilities against the running max, the output rescaled when
  // that max grows (by exactly 0 at a row's first tile, where out is still all zeros).
  for (int r = 0; r < R; r++) {
    const int n = std::min(tend, ctx0 + r) - t0;
    if (n <= 0) continue;
    for (int g = 0; g < G; g++) {
      const int rg = (r0 + r) * G + g;
      const float alpha = softmax_tile(buf + (r * G + g) * kKeyTile, n, run_max[rg], run_sum[rg]);
      if (alpha != 1.0f) scale_row(out + r * a.row_stride + int64_t(g) * D, D, alpha);
    }
  }

  // Values, block segment by block segment (V is [slot][head_dim] inside a block).
  for (int js = t0; js < tend;) {
    const int blk = js / bs, off = js - blk * bs, seg = std::min(tend, (blk + 1) * bs) - js;
    const Elem* vb = vpool + int64_t(a.block_table[blk]) * a.block_stride + a.head_offset + int64_t(off) * D;
    int nj[R];
    for (int r = 0; r < R; r++) nj[r] = std::max(0, std::min(seg, ctx0 + r - js));
    for (int rr = 0; rr < R; rr += VR)
      block_values<G, VR, VCH>(buf + rr * G * kKeyTile, kKeyTile, js - t0, vb, D, nj + rr, seg, out + rr * a.row_stride,
                               a.row_stride);
    js += seg;
  }
}

/**
 * Heads [g0, g0 + G) of every row, key tile by key tile (flash attention's order): a tile's keys
 * and values are loaded from memory once and reused from L1 by every pass of rows, and each
 * row's scores never leave a kKeyTile-wide buffer. Within a tile, rows go in passes of R rows, R
 * as large as the register budget allows.
 */
template <int G, class Elem>
void attention_group(const AttentionArgs& a, int g0) {
  constexpr int kMaxRows = std::max(1, std::min(4, kRowHeadAccs / G));
  const int D = a.head_dim, L = a.ctx_len + a.rows - 1;  // L: the last row's context
  float* buf = a.scratch;                                 // [kMaxRows][G][kKeyTile]
  float* run_max = buf + kMaxRows * G * kKeyTile;         // [rows][G]
  float* run_sum = run_max + int64_t(a.rows) * G;         // [rows][G]
  for (int i = 0; i < a.rows * G; i++) run_max[i] = -INFINITY, run_sum[i] = 0.0f;
  for (int r = 0; r < a.rows; r++) {
    float* o = a.out + r * a.row_stride + int64_t(g0) * D;
    std::fill(o, o + int64_t(G) * D, 0.0f);
  }
  for (int t0 = 0; t0 < L; t0 += kKeyTile) {
    const int t1 = std::min(L, t0 + kKeyTile);
    int r0 = 0;
    while (r0 < a.rows) {
      const int left = a.rows - r0;
      if (kMaxRows >= 4 && left >= 4) {
        tile_pass<G, (kMaxRows >= 4 ? 4 : 1), Elem>(a, g0, r0, t0, t1, buf, run_max, run_sum);
        r0 += 4;
      } else if (kMaxRows >= 2 && left >= 2) {
        tile_pass<G, (kMaxRows >= 2 ? 2 : 1), Elem>(a, g0, r0, t0, t1, buf, run_max, run_sum);
        r0 += 2;
      } else {
        tile_pass<G, 1, Elem>(a, g0, r0, t0, t1, buf, run_max, run_sum);
        r0 += 1;
      }
    }
  }
  // out /= the softmax's sum (times v_scale: 1 for float pools).
  for (int r = 0; r < a.rows; r++)
    for (int g = 0; g < G; g++)
      scale_row(a.out + r * a.row_stride + int64_t(g0 + g) * D, D, a.v_scale / run_sum[r * G + g]);
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
