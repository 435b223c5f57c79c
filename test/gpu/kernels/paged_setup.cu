#include "paged_setup.h"

#include <algorithm>

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

}  // namespace harness
