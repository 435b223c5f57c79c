// int4 groups (int4_awq): nibbles [out, in / 2] (element 2j low, 2j + 1 high), fp32 scales and
// uint8 zero points [out, in / group]; w = (q - zero) * scale. Used for AWQ engines built by
// grpst and for AutoAWQ checkpoints converted to engines. Where the level has them (AVX-512),
// groups of whole 128- or 64-weight units are multiplied in the packed nibbles' order, x permuted
// to match (gemm_int4_nibbles.h). Where the level has AMX-INT8 tiles (amx), groups of whole
// 64-weight chunks are widened to int8 and multiplied with x's three int8 parts instead, exact
// int32 sums per group (gemm_amx_int4.cpp), at every row count.
#include <cstdint>
#include <cstring>
#include <vector>

#include "grpst/linear.h"
#include "kernels/cpu/gemm_int4_nibbles.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_linear_common.h"

namespace grpst {

namespace {

LinearWeight load(TensorStore& store, const std::string& prefix, int out, int in) {
  const TensorDesc& s = store.desc(prefix + ".scales");
  if (s.shape.size() != 2 || s.shape[1] <= 0 || in % s.shape[1] != 0)
    throw Error("tensor " + prefix + ".scales does not divide in_features " + std::to_string(in) + " into groups");
  const int groups = int(s.shape[1]), group = in / groups;
  if (group % 2 != 0) throw Error(prefix + ": int4 group size " + std::to_string(group) + " must be even");
  LinearWeight w;
  w.fmt = WeightFormat::INT4;
  w.out_features = out;
  w.in_features = in;
  w.group_size = group;
  w.w = quant::tensor(store, prefix + ".qweight", DType::U8, {out, in / 2});
  w.ldw = in / 2;
  w.scales = static_cast<const float*>(quant::tensor(store, prefix + ".scales", DType::F32, {out, groups}));
  w.zeros = quant::tensor(store, prefix + ".zeros", DType::U8, {out, groups});
  return w;
}

// The unit in which the level multiplies this weight in its nibbles' order (0: the natural order).
int nibble_unit(const LinearWeight& w, const QuantKernels& q) {
  return q.permute_i4_x != nullptr ? cpu::i4_nibble_unit(w.group_size) : 0;
}

// The prepared operand's header value for x's int8 parts (on_tiles), not a nibble unit.
constexpr int kTilesOperand = -1;
constexpr int kParts = 3;

bool on_tiles(const LinearWeight& w, const QuantKernels& q) {
  return q.gemm_i4_tiles != nullptr && q.i4_tiles_fit(w.group_size);
}

// x's rows as gemm_i4's operand at `op` (64-byte aligned; tiles_operand_bytes): int8 parts
// [i4_part_rows(M), K] (row i4_part_row(M, m, p)) in the chunk order (each 64 columns' even ones,
// then their odd ones), at a 64-byte boundary their scales, then them packed for the tiles (past
// i4_register_rows rows of x): quant_linear_common.h's int8 operand layout. Rows split across
// `pool` where it has several threads (nullptr: this one).
size_t tiles_operand_bytes(const QuantKernels& q, int M, int K) {
  const int rows = q.i4_part_rows(M);
  return quant::i8_packed_offset(rows, K) + q.pack_i8_bytes(rows, K) + 64;
}
void make_tiles_operand(const QuantKernels& q, const float* x, int64_t ldx, int M, int K, uint8_t* op, ThreadPool* pool) {
  const int rows = q.i4_part_rows(M);
  int8_t* parts = reinterpret_cast<int8_t*>(op);
  float* scales = reinterpret_cast<float*>(op + quant::i8_scales_offset(rows, K));
  // rows no part of x takes (a token block's tail): zero parts, scale 0, so that every row is
  // written before packing
  thread_local std::vector<char> taken;
  taken.assign(size_t(rows), 0);
  for (int m = 0; m < M; m++)
    for (int p = 0; p < kParts; p++) taken[size_t(q.i4_part_row(M, m, p))] = 1;
  for (int r = 0; r < rows; r++)
    if (!taken[size_t(r)]) {
      std::memset(parts + int64_t(r) * K, 0, size_t(K));
      scales[r] = 0;
    }
  auto split = [&](int m0, int m1) {
    thread_local std::vector<float> rest_buf;
    float* rest = quant::scratch(rest_buf, size_t(K));
    for (int m = m0; m < m1; m++) {
      const float* xr = x + int64_t(m) * ldx;
      for (int c = 0; c < K; c += 64)
        for (int j = 0; j < 32; j++) {
          rest[c + j] = xr[c + 2 * j];
          rest[c + 32 + j] = xr[c + 2 * j + 1];
        }
      const int row0 = q.i4_part_row(M, m, 0), step = q.i4_part_row(M, m, 1) - row0;
      quant::split_int8_parts(q, rest, K, kParts, parts + int64_t(row0) * K, int64_t(step) * K, scales + row0, step);
    }
  };
  if (pool)
    quant::rows_in_pieces(*pool, M, split);
  else
    split(0, M);
  if (M > q.i4_register_rows) q.pack_i8(parts, K, rows, K, const_cast<void*>(quant::i8_packed_at(op, rows, K)));
}

// The activations permuted into the nibbles' order, or as int8 parts for the tiles (on_tiles),
// once per call (nullptr: the natural order): a 64-byte header holding the unit (kTilesOperand
// for the parts), then the operand (64-byte aligned, so no vector load straddles two cache lines).
const void* prepare(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, int M,
                    std::vector<uint8_t>& buf, ThreadPool& pool) {
  const QuantKernels& q = quant_kernels(k.level);
  if (on_tiles(w, q)) {
    uint8_t* head = quant::scratch(buf, 64 + tiles_operand_bytes(q, M, w.in_features) + 64);
    head = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(head) + 63) & ~uintptr_t(63));
    std::memcpy(head, &kTilesOperand, sizeof kTilesOperand);
    make_tiles_operand(q, x, ldx, M, w.in_features, head + 64, &pool);
    return head;
  }
  const int unit = nibble_unit(w, q);
  if (unit == 0) return nullptr;
  const int K = w.in_features;
  const size_t bytes = 64 + size_t(M) * K * sizeof(float) + 64;
  if (buf.size() < bytes) buf.resize(bytes);
  uint8_t* head = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  std::memcpy(head, &unit, sizeof unit);
  float* xp = reinterpret_cast<float*>(head + 64);
  quant::rows_in_pieces(pool, M, [&](int m0, int m1) {
    q.permute_i4_x(x + int64_t(m0) * ldx, ldx, m1 - m0, K, unit, xp + int64_t(m0) * K);
  });
  return head;
}

void columns(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, const void* prepared, float* y,
             int64_t ldy, int M, int n0, int n1) {
  const QuantKernels& q = quant_kernels(k.level);
  const int K = w.in_features, nb = quant::block_rows(K), groups = K / w.group_size;
  int prepared_unit = 0;
  if (prepared) std::memcpy(&prepared_unit, prepared, sizeof prepared_unit);
  if (on_tiles(w, q)) {
    // prepare made it, for this weight or an earlier projection of x: on a level with the tiles
    // every group that has a nibble unit (a multiple of 64) takes them, so an operand shared in
    // one call is always the parts
    const uint8_t* op = static_cast<const uint8_t*>(prepared) + 64;
    const int rows = q.i4_part_rows(M);
    q.gemm_i4_tiles(reinterpret_cast<const int8_t*>(op), reinterpret_cast<const float*>(op + quant::i8_scales_offset(rows, K)),
                    quant::i8_packed_at(op, rows, K), M, static_cast<const uint8_t*>(w.w), w.ldw, w.scales,
                    static_cast<const uint8_t*>(w.zeros), groups, w.group_size, y, ldy, n0, n1, K);
    return;
  }
  // Every path of a weight in one order, whatever else shares the call: an operand prepared in
  // another unit (projections of one input with different group sizes) is not this weight's, so
  // the task permutes x itself.
  const int unit = nibble_unit(w, q);
  const bool nibbles = unit != 0;
  if (nibbles) {
    if (prepared_unit == unit) {
      x = reinterpret_cast<const float*>(static_cast<const uint8_t*>(prepared) + 64);
    } else {
      thread_local std::vector<float> own_buf;
      float* own = quant::scratch(own_buf, size_t(M) * K);
      q.permute_i4_x(x, ldx, M, K, unit, own);
      x = own;
    }
    ldx = K;
  }
  thread_local std::vector<float> rows_buf;
  float* rows = quant::scratch(rows_buf, size_t(nb) * K);
  const uint8_t* base = static_cast<const uint8_t*>(w.w);
  const uint8_t* zeros = static_cast<const uint8_t*>(w.zeros);
  const auto gemv = nibbles ? q.gemv_i4_nibbles : q.gemv_i4;
  const auto decode = nibbles ? q.decode_i4_rows_nibbles : q.decode_i4_rows;
  for (int n = n0; n < n1; n += nb) {
    const int cnt = std::min(nb, n1 - n);
    // decode: widened in registers, not through an fp32 block (where the groups allow it)
    if (M <= kQuantGemvMaxRows && gemv(x, ldx, base + n * w.ldw, w.ldw, w.scales + int64_t(n) * groups,
                                       zeros + int64_t(n) * groups, groups, w.group_size, y + n, ldy, M, cnt))
      continue;
    decode(base + n * w.ldw, w.ldw, w.scales + int64_t(n) * groups, zeros + int64_t(n) * groups, groups, w.group_size,
           cnt, K, rows);
    q.gemm_f32w(x, ldx, rows, K, y + n, ldy, M, cnt, K);
  }
}

int64_t bytes(const LinearWeight& w) {
  const int64_t groups = w.in_features / w.group_size;
  return int64_t(w.out_features) * (w.in_features / 2 + groups * 5);
}

}  // namespace

extern const LinearFormatOps kLinearInt4 = {"int4", load, columns, bytes, prepare, true};

}  // namespace grpst
