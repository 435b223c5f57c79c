// AWQ's scale-search objective on the GPU (the twin of native/src/addon/quant_tools.cpp's awqLoss):
// loss(s) = mean over (t, o) of (x_t . delta_o)^2 with delta = W - Q(W diag(s)) diag(1/s), Q the
// symmetric int4 group quantizer (scale amax / 7, codes -8..7, round half to even).
#pragma once
#include <cstdint>

#include "cuda_status.h"

namespace grpst::cuda {

// delta [rows, K] = w - Q(w * s) / s (s null: plain round-to-nearest), group columns per scale; the
// same fp32 operations in the same order as the CPU, so the same bits.
Status awq_delta(const float* w /*[rows, K]*/, const float* s /*[K] or null*/, int rows, int K, int group,
                 float* delta /*[rows, K]*/, const Exec& ex);

// Blocks of kAwqTile x kAwqTile products y = x . delta^T, each block's sum of y^2 in partial[block]
// (fp32 products and sums within a block, fp64 across its threads): the caller adds the blocks in
// index order, so the loss does not depend on scheduling. awq_partial_blocks says how many.
constexpr int kAwqTile = 64;
inline int awq_partial_blocks(int n, int rows) {
  return ((n + kAwqTile - 1) / kAwqTile) * ((rows + kAwqTile - 1) / kAwqTile);
}
Status awq_sumsq(const float* x /*[n, K]*/, const float* delta /*[rows, K]*/, int n, int rows, int K,
                 double* partial /*[awq_partial_blocks]*/, const Exec& ex);

}  // namespace grpst::cuda
