// Fast device-side random fills for benchmark weights (gigabytes; host generation would dominate).
#pragma once
#include <cstddef>
#include <cstdint>

#include "../../../native/src/kernels/cuda/kernels.h"

namespace harness {
void fill_bf16(grpst::cuda::bf16* p, size_t n, float scale, float offset, uint64_t seed);
void fill_bytes(void* p, size_t bytes, uint64_t seed);             // any byte value (int8 / int4 data)
void fill_e4m3(uint8_t* p, size_t n, float scale, uint64_t seed);  // finite e4m3 values
void fill_f32(float* p, size_t n, float scale, float offset, uint64_t seed);
void fill_i32(int32_t* p, size_t n, int32_t value);
}  // namespace harness
