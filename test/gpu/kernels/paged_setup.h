// A paged KV cache for the attention parity tests: the host copy (ref::KvHost) that the CPU twins
// read, and the same bytes and block tables on the device.
#pragma once
#include <vector>

#include "harness.h"
#include "reference.h"

namespace harness {

struct PagedSetup {
  ref::KvHost kv;
  std::vector<int32_t> tables;  // [S, max_blocks]
  int max_blocks = 0;
  Dev<uint8_t> dk, dv;
  Dev<int32_t> dtables;
};

// S sequences of the given lengths in a cache of random values whose blocks are handed out in
// random order.
void make_paged(PagedSetup& p, const std::vector<int>& lens, int nkv, int hd, int bs, grpst::cuda::KvDtype dtype,
                Rng& r);

const char* kv_name(grpst::cuda::KvDtype d);

}  // namespace harness
