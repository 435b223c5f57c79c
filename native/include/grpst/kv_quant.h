// Element conversions of the quantized KV cache (TensorRT-LLM semantics, per-tensor scales): the
// cache stores quantize(x / scale), saturating, and attention reads value * scale. The same
// rounding as the CUDA kernels' KvFp8 / KvInt8 (native/src/kernels/cuda/device_utils.cuh):
// IEEE division, round to nearest even, e4m3 saturating at +-448 (NaN stays NaN, code 0x7f),
// int8 clamped to [-127, 127]. Byte layout: src/quant/LAYOUTS.md, "KV cache".
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace grpst {

/** e4m3 (OCP E4M3FN) code of x: round to nearest even, saturating at +-448. */
inline uint8_t f32_to_e4m3(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const uint8_t sign = uint8_t((bits >> 24) & 0x80);
  if (std::isnan(x)) return uint8_t(sign | 0x7f);
  const float a = std::fabs(x);
  if (a >= 448.0f) return uint8_t(sign | 0x7e);
  if (a < 0.015625f) {
    // Subnormals: multiples of 2^-9; a count of 8 is the smallest normal, code 0x08, as it should be.
    return uint8_t(sign | int(std::nearbyint(a * 512.0f)));
  }
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1): exponent field e + 6, mantissa step 2^(e - 4)
  int q = int(std::nearbyint(std::ldexp(a, 4 - e)));  // 8..16 (exact scaling, one rounding)
  int field = e + 6;
  if (q == 16) {
    q = 8;
    field++;
  }
  return uint8_t(sign | (field << 3) | (q - 8));
}

/** Value of an e4m3 code, exact (code 0x7f, NaN, reads as 480: the quantizer never writes it from finite input). */
inline float e4m3_to_f32(uint8_t b) {
  const uint32_t e = (b >> 3) & 0xf, m = b & 7;
  float mag;
  if (e == 0) {
    mag = float(m) * (1.0f / 512);
  } else {
    const uint32_t bits = ((e + 120) << 23) | (m << 20);
    std::memcpy(&mag, &bits, 4);
  }
  return (b & 0x80) ? -mag : mag;
}

inline uint8_t kv_quantize_fp8(float x, float scale) { return f32_to_e4m3(x / scale); }

inline int8_t kv_quantize_int8(float x, float scale) {
  const float r = std::nearbyint(x / scale);
  return int8_t(int(std::fmax(-127.0f, std::fmin(127.0f, r))));
}

}  // namespace grpst
