// Shared basics of the native runtime: the error type every layer throws (the addon turns it
// into a JS exception or an "error" finish event), element types, bf16/fp16 conversions.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace grpst {

/** Any failure the runtime reports; `what()` names the problem (and the file when there is one). */
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/** Element types of tensors in checkpoints and engine folders (safetensors spelling in dtype_name). */
enum class DType : uint8_t { BF16, F16, F32, I8, U8, I32, F8_E4M3 };

DType parse_dtype(const std::string& name);  // "BF16", "F16", ... ; throws Error on others
const char* dtype_name(DType d);
size_t dtype_size(DType d);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/** Round to nearest even, as torch does; NaN stays NaN. */
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);

}  // namespace grpst
