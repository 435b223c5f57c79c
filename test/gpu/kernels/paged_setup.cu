#include "paged_setup.h"

#include <algorithm>
#include <cmath>

namespace harness {
namespace cu = grpst::cuda;

void make_paged(PagedSetup& p, const std::vector<int>& lens, int nkv, int hd, int bs, cu::KvDtype dtype, Rng& r) {
  int total = 0, longest = 0;
  for (int l : lens) {
    total += (l + bs - 1) / bs;
    longest = std::max(longest, l);
  }
  p.max_blocks = (longest + bs - 1) / bs;
  p.kv.dtype = dtype;
  p.kv.num_blocks = total + 3;
  p.kv.block_size = bs;
  p.kv.nkv = nkv;
  p.kv.hd = hd;
  p.kv.k_scale = dtype == cu::KvDtype::bf16 ? 1.f : dtype == cu::KvDtype::fp8 ? 0.01f : 0.02f;
  p.kv.v_scale = dtype == cu::KvDtype::bf16 ? 1.f : dtype == cu::KvDtype::fp8 ? 0.008f : 0.015f;
  p.kv.allocate();
  const size_t n = static_cast<size_t>(p.kv.num_blocks) * nkv * bs * hd;
  for (size_t i = 0; i < n; ++i) {
    p.kv.put(true, i, r.sym(2.f));
    p.kv.put(false, i, r.sym(2.f));
  }
  std::vector<int32_t> order(p.kv.num_blocks);
  for (int i = 0; i < p.kv.num_blocks; ++i) order[i] = i;
  for (int i = p.kv.num_blocks - 1; i > 0; --i) std::swap(order[i], order[r.below(i + 1)]);
  p.tables.assign(lens.size() * p.max_blocks, 0);
  int next = 0;
  for (size_t s = 0; s < lens.size(); ++s)
    for (int b = 0; b < (lens[s] + bs - 1) / bs; ++b) p.tables[s * p.max_blocks + b] = order[next++];
  p.kv.dequantize_all();
  p.dk.upload(p.kv.k);
  p.dv.upload(p.kv.v);
  p.dtables.upload(p.tables);
}

const char* kv_name(cu::KvDtype d) { return d == cu::KvDtype::bf16 ? "bf16" : d == cu::KvDtype::fp8 ? "fp8" : "int8"; }

void random_qk_norms(Rng& r, int hd, bool norms, ref::VF& qn, ref::VF& kn) {
  qn.clear();
  kn.clear();
  if (!norms) return;
  qn.resize(hd);
  kn.resize(hd);
  for (auto& v : qn) v = 1.f + r.sym(0.2f);
  for (auto& v : kn) v = 1.f + r.sym(0.2f);
}

std::vector<float> rope_inv_freq(int hd) {
  std::vector<float> inv(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv[i] = static_cast<float>(1.0 / std::pow(1e6, 2.0 * i / hd));
  return inv;
}

DecodeRows make_decode_rows(const PagedSetup& p, const std::vector<int>& lens, int nh, int nkv, int hd, int bs,
                            bool norms, Rng& r) {
  const int R = static_cast<int>(lens.size());
  DecodeRows d;
  d.pos.resize(R);
  d.slots.resize(R);
  d.seq.resize(R);
  for (int i = 0; i < R; ++i) {
    d.seq[i] = R - 1 - i;
    d.pos[i] = lens[d.seq[i]] - 1;
    d.slots[i] = p.tables[d.seq[i] * p.max_blocks + d.pos[i] / bs] * bs + d.pos[i] % bs;
  }
  d.qkv = rand_bf16(r, static_cast<size_t>(R) * (nh + 2 * nkv) * hd, 2.f);
  random_qk_norms(r, hd, norms, d.qn, d.kn);
  d.inv = rope_inv_freq(hd);
  return d;
}

}  // namespace harness
