// Parity test groups (each kernel against its CPU twin on fresh random data) and benches.
#pragma once
#include <string>

namespace harness {
void test_elementwise();
void test_attention();
void test_linear();
void test_sampling();
void bench_ceilings();
void bench_kernels();
void bench_model(const std::string& formats, const std::string& prefill_lengths);
int model_parity(const std::string& fixtures_dir);
void profile_kernels();
}  // namespace harness
