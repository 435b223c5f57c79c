// The activation quantizers' rounding of one value, the definition every level's row kernels
// (quantize_rows.cpp) reproduce bit for bit: their vector bodies and their tails.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace grpst::quant_round {

/** e4m3 rounding of one value already divided by its scale: nearest even, saturating at +-448. */
inline float e4m3(float v) {
  const float a = std::min(std::fabs(v), 448.0f);
  float r;
  if (a < 0.015625f) {
    r = std::nearbyint(a * 512.0f) / 512.0f;  // subnormals: multiples of 2^-9
  } else {
    int e;
    std::frexp(a, &e);                           // a = f * 2^e, f in [0.5, 1)
    const float step = std::ldexp(1.0f, e - 4);  // 3 mantissa bits below the leading one
    r = std::nearbyint(a / step) * step;
  }
  return std::signbit(v) ? -r : r;
}

/** One activation times its row's 1 / scale as SmoothQuant's int8: nearest even, within +-127. */
inline int8_t int8(float v, float inv) { return int8_t(std::clamp(std::nearbyint(v * inv), -127.0f, 127.0f)); }

}  // namespace grpst::quant_round
