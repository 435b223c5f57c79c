// Parity test groups (each kernel against its CPU twin on fresh random data) and benches.
#pragma once
#include <string>

namespace harness {
void test_elementwise();
void test_attention();
void test_persistent();
void test_linear();
void test_linear_bf16_ws();  // the bf16 wgmma GEMM's checks alone (also part of test_linear)
void test_sampling();
void test_allreduce();
void test_lora();
void test_moe();
void test_moe_w8a8();  // fp8 / int8_sq experts (test_moe_w8a8.cu)
void bench_ceilings();
void bench_kernels();
void bench_stream_rows();
void bench_lt();
void bench_ws_probe();  // the bf16 wgmma GEMM at 64 rows, part by part (bench_ws_probe.cu)
void bench_moe();  // one Qwen3-30B-A3B sparse layer, tile kernel against tensor-core tiles
void bench_model(const std::string& formats, const std::string& prefill_lengths);
int model_parity(const std::string& fixtures_dir);
struct Fixture;
// The fixture with two tensor-parallel ranks on this one GPU against one rank (model_parity_tp.cu).
void tensor_parallel_parity(const Fixture& f);
void profile_kernels();
}  // namespace harness
