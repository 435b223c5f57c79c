#include "reference_moe.h"

#include <algorithm>
#include <cmath>

#include "../../../native/src/kernels/cuda/moe.h"

namespace ref {

using harness::bf2f;
using harness::f2bf;
using harness::rbf;

void moe_router_logits(const V16& x, const V16& router, int T, int H, int E, VF& logits) {
  logits.assign(static_cast<size_t>(T) * E, 0.f);
  for (int t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e) {
      double acc = 0;
      for (int k = 0; k < H; ++k)
        acc += double(bf2f(x[static_cast<size_t>(t) * H + k])) * bf2f(router[static_cast<size_t>(e) * H + k]);
      logits[static_cast<size_t>(t) * E + e] = static_cast<float>(acc);
    }
}

void moe_route_from_logits(const VF& logits, int T, int E, int K, bool norm_topk, VI& choice, VF& weight) {
  choice.assign(static_cast<size_t>(T) * K, 0);
  weight.assign(static_cast<size_t>(T) * K, 0.f);
  std::vector<float> p(E);
  std::vector<int32_t> order(E);
  for (int t = 0; t < T; ++t) {
    std::copy_n(logits.begin() + static_cast<ptrdiff_t>(t) * E, E, p.begin());
    const float mx = *std::max_element(p.begin(), p.end());
    float sum = 0.f;
    for (int e = 0; e < E; ++e) sum += (p[e] = std::exp(p[e] - mx));
    for (int e = 0; e < E; ++e) p[e] /= sum;
    for (int e = 0; e < E; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [&p](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float kept = 0.f;
    for (int j = 0; j < K; ++j) kept += p[order[j]];
    for (int j = 0; j < K; ++j) {
      choice[static_cast<size_t>(t) * K + j] = order[j];
      weight[static_cast<size_t>(t) * K + j] = norm_topk ? p[order[j]] / kept : p[order[j]];
    }
  }
}

void moe_group(const VI& choice, int P, int K, int E, VI& slot, VI& row_token, VI& tiles, int tile_rows) {
  std::vector<int32_t> start(static_cast<size_t>(E) + 1, 0);
  for (int p = 0; p < P; ++p) start[static_cast<size_t>(choice[p]) + 1]++;
  tiles.clear();
  for (int e = 0; e < E; ++e) {
    const int c = start[static_cast<size_t>(e) + 1];
    for (int r = 0; r < c; r += tile_rows) tiles.insert(tiles.end(), {e, start[e] + r, std::min(tile_rows, c - r)});
    start[static_cast<size_t>(e) + 1] += start[e];
  }
  slot.assign(P, 0);
  row_token.assign(P, 0);
  for (int p = 0; p < P; ++p) {
    const int r = start[choice[p]]++;
    slot[p] = r;
    row_token[r] = p / K;
  }
}

void moe_expert_column_abs_stats(const V16& x, const VI& row_of, const VI& tiles, int cols, VF& abs_max,
                                 std::vector<double>& abs_sum, std::vector<uint64_t>& rows_seen) {
  for (size_t t = 0; t + 2 < tiles.size(); t += 3) {
    const int e = tiles[t], row0 = tiles[t + 1], rows = tiles[t + 2];
    rows_seen[static_cast<size_t>(e)] += static_cast<uint64_t>(rows);
    for (int r = row0; r < row0 + rows; ++r) {
      const size_t src = static_cast<size_t>(row_of.empty() ? r : row_of[static_cast<size_t>(r)]);
      for (int c = 0; c < cols; ++c) {
        const float a = std::fabs(bf2f(x[src * cols + c]));
        const size_t at = static_cast<size_t>(e) * cols + c;
        abs_max[at] = std::max(abs_max[at], a);
        abs_sum[at] += a;
      }
    }
  }
}

static float silu_bf16(float g) { return rbf(g / (1.f + std::exp(-g))); }

// The experts of any weight format: wgu(i) / wdn(i) the gate_up / down weight at element i as a
// float, sgu(row) / sdn(row) the row's scale (1 for bf16 and int4: the same bits as no scale),
// xs(e, k) expert e's scale of gate_up's input column k (1 but for int4 with input scales),
// applied to x in fp32.
template <class GateUp, class GateUpScale, class Down, class DownScale, class XScale>
static void experts_twin(const V16& x, GateUp wgu, GateUpScale sgu, Down wdn, DownScale sdn, XScale xs,
                         const VI& row_token, const VI& row_expert, int P, int H, int Im, VF& act, VF& out,
                         const VF* act_in) {
  act.assign(static_cast<size_t>(P) * Im, 0.f);
  out.assign(static_cast<size_t>(P) * H, 0.f);
  for (int r = 0; r < P; ++r) {
    const size_t e = static_cast<size_t>(row_expert[r]);
    const uint16_t* xr = &x[static_cast<size_t>(row_token[r]) * H];
    for (int j = 0; j < Im; ++j) {
      const size_t gi = e * 2 * Im + 2 * j;  // gate row; its up row follows
      double ga = 0, ua = 0;
      for (int k = 0; k < H; ++k) {
        const float xk = bf2f(xr[k]) * xs(e, k);
        ga += double(wgu(gi * H + k)) * xk;
        ua += double(wgu((gi + 1) * H + k)) * xk;
      }
      act[static_cast<size_t>(r) * Im + j] = rbf(silu_bf16(rbf(float(ga) * sgu(gi))) * rbf(float(ua) * sgu(gi + 1)));
    }
    const float* ar = act_in ? &(*act_in)[static_cast<size_t>(r) * Im] : &act[static_cast<size_t>(r) * Im];
    for (int n = 0; n < H; ++n) {
      const size_t row = e * H + n;
      double acc = 0;
      for (int k = 0; k < Im; ++k) acc += double(wdn(row * Im + k)) * ar[k];
      out[static_cast<size_t>(r) * H + n] = rbf(float(acc) * sdn(row));
    }
  }
}

void moe_experts(const V16& x, const V16& gate_up, const V16& down, const VI& row_token, const VI& row_expert, int P,
                 int H, int Im, VF& act, VF& out, const VF* act_in) {
  const auto one = [](size_t) { return 1.f; };
  const auto no_xs = [](size_t, int) { return 1.f; };
  experts_twin(x, [&](size_t i) { return bf2f(gate_up[i]); }, one, [&](size_t i) { return bf2f(down[i]); }, one,
               no_xs, row_token, row_expert, P, H, Im, act, out, act_in);
}

void moe_experts_int8(const V16& x, const std::vector<int8_t>& gate_up, const VF& gate_up_scale,
                      const std::vector<int8_t>& down, const VF& down_scale, const VI& row_token, const VI& row_expert,
                      int P, int H, int Im, VF& act, VF& out, const VF* act_in) {
  experts_twin(x, [&](size_t i) { return float(gate_up[i]); }, [&](size_t row) { return gate_up_scale[row]; },
               [&](size_t i) { return float(down[i]); }, [&](size_t row) { return down_scale[row]; },
               [](size_t, int) { return 1.f; }, row_token, row_expert, P, H, Im, act, out, act_in);
}

// int4 rows of K nibbles (element 2j the low nibble of byte j) decoded with their groups' fp32
// scales and uint8 zeros: (q - zero) * scale in fp32, as the CPU backend decodes them; times
// col_scale(row, k) and rounded to bf16 when `wide` (the tensor-core tiles' one rounding).
template <class ColScale>
static VF decode_int4(const Int4Matrix& m, size_t rows, int K, bool wide, ColScale col_scale) {
  VF w(rows * K);
  const int groups = K / m.group;
  for (size_t r = 0; r < rows; ++r)
    for (int g = 0; g < groups; ++g) {
      const float sc = m.scale[r * groups + g], zr = float(m.zero[r * groups + g]);
      for (int k = g * m.group; k < (g + 1) * m.group; ++k) {
        const uint8_t byte = m.q[r * (K / 2) + k / 2];
        float v = (float((k & 1) ? byte >> 4 : byte & 15) - zr) * sc;
        if (wide) v = rbf(v * col_scale(r, k));
        w[r * K + k] = v;
      }
    }
  return w;
}

void moe_experts_int4(const V16& x, const Int4Matrix& gate_up, const VF* pre_quant_scale, const Int4Matrix& down,
                      const VI& row_token, const VI& row_expert, int P, int H, int Im, VF& act, VF& out,
                      const VF* act_in, bool wide) {
  const size_t E = gate_up.q.size() * 2 / (size_t(2) * Im * H);
  const auto xscale = [&](size_t e, int k) { return pre_quant_scale ? (*pre_quant_scale)[e * H + k] : 1.f; };
  // gate_up row r belongs to expert r / (2 Im); the wide tiles fold its input scale into the weights
  const VF gu = decode_int4(gate_up, E * 2 * Im, H, wide, [&](size_t r, int k) { return xscale(r / (2 * Im), k); });
  const VF dn = decode_int4(down, E * H, Im, wide, [](size_t, int) { return 1.f; });
  const auto one = [](size_t) { return 1.f; };
  experts_twin(x, [&](size_t i) { return gu[i]; }, one, [&](size_t i) { return dn[i]; }, one,
               [&](size_t e, int k) { return wide ? 1.f : xscale(e, k); }, row_token, row_expert, P, H, Im, act, out,
               act_in);
}

// One input row quantized as moe_w8a8.cu does (values times `factors` first when not null, then as
// the dense twins quantize) into q; returns the row's scale (int8_sq: amax / 127; fp8: 1, its scale
// being in the weight rows').
static float quantize_row(const float* v, int L, bool fp8, float input_scale, const float* factors, VF& q) {
  q.resize(L);
  for (int k = 0; k < L; ++k) q[k] = factors ? v[k] * factors[k] : v[k];
  const float s = quantize_act_row(q.data(), L, fp8, input_scale);
  return fp8 ? 1.f : s;
}

void moe_experts_w8a8(const V16& x, const W8A8Experts& w, const VI& row_token, const VI& row_expert, int P, int H,
                      int Im, VF& act, VF& out, const VF* act_in) {
  const auto weight = [&](const std::vector<uint8_t>& m, size_t i) {
    return w.fp8 ? harness::e4m32f(m[i]) : float(static_cast<int8_t>(m[i]));
  };
  act.assign(static_cast<size_t>(P) * Im, 0.f);
  out.assign(static_cast<size_t>(P) * H, 0.f);
  VF xr(H), q;
  for (int r = 0; r < P; ++r) {
    const size_t e = static_cast<size_t>(row_expert[r]);
    for (int k = 0; k < H; ++k) xr[k] = bf2f(x[static_cast<size_t>(row_token[r]) * H + k]);
    const float* factors = !w.fp8 && !w.pre_quant_scale.empty() ? &w.pre_quant_scale[e * H] : nullptr;
    float xs = quantize_row(xr.data(), H, w.fp8, w.fp8 ? w.gate_up_input_scale[e] : 1.f, factors, q);
    for (int j = 0; j < Im; ++j) {
      const size_t gi = e * 2 * Im + 2 * j;  // gate row; its up row follows
      double ga = 0, ua = 0;
      for (int k = 0; k < H; ++k) {
        ga += double(weight(w.gate_up, gi * H + k)) * q[k];
        ua += double(weight(w.gate_up, (gi + 1) * H + k)) * q[k];
      }
      const float sg = w.fp8 ? w.gate_up_scale[gi] : xs * w.gate_up_scale[gi];
      const float su = w.fp8 ? w.gate_up_scale[gi + 1] : xs * w.gate_up_scale[gi + 1];
      act[static_cast<size_t>(r) * Im + j] = rbf(silu_bf16(rbf(float(ga) * sg)) * rbf(float(ua) * su));
    }
    const float* ar = act_in ? &(*act_in)[static_cast<size_t>(r) * Im] : &act[static_cast<size_t>(r) * Im];
    xs = quantize_row(ar, Im, w.fp8, w.fp8 ? w.down_input_scale[e] : 1.f, nullptr, q);
    for (int n = 0; n < H; ++n) {
      const size_t row = e * H + n;
      double acc = 0;
      for (int k = 0; k < Im; ++k) acc += double(weight(w.down, row * Im + k)) * q[k];
      out[static_cast<size_t>(r) * H + n] = rbf(float(acc) * (w.fp8 ? w.down_scale[row] : xs * w.down_scale[row]));
    }
  }
}

void moe_combine(const V16& out, const VI& choice, const VF& weight, const VI& slot, int T, int H, int K, V16& h) {
  std::vector<int> order(K);
  for (int t = 0; t < T; ++t) {
    const size_t b = static_cast<size_t>(t) * K;
    for (int j = 0; j < K; ++j) order[j] = j;
    std::sort(order.begin(), order.end(), [&](int a, int c) { return choice[b + a] < choice[b + c]; });
    for (int i = 0; i < H; ++i) {
      float acc = 0.f;
      for (int j : order) acc = std::fma(weight[b + j], bf2f(out[static_cast<size_t>(slot[b + j]) * H + i]), acc);
      uint16_t& hv = h[static_cast<size_t>(t) * H + i];
      hv = f2bf(bf2f(hv) + rbf(acc));
    }
  }
}

}  // namespace ref
