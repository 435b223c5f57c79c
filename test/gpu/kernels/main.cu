// grpst_gpu_harness: parity tests and benchmarks of the CUDA kernels and the CUDA forward.
//   grpst_gpu_harness test [GROUPS]         kernel parity tests (CPU twins); GROUPS e.g. allreduce,linear
//   grpst_gpu_harness parity DIR            whole-model parity on the tiny fixtures (DIR from export-fixtures)
//   grpst_gpu_harness bench [FORMATS] [PROMPTS]  ceilings, kernels, whole model (random Qwen3-8B shape)
//   grpst_gpu_harness rows                  ceilings, the linear kernels at 1-8 decode rows
//   grpst_gpu_harness lt                    ceilings, every cuBLASLt candidate for the projections
//   grpst_gpu_harness profile               one launch of each key kernel (for ncu)
//   grpst_gpu_harness moe                   a Qwen3-30B-A3B sparse layer at 1-8,192 tokens, both expert paths
//   --json FILE                             writes {"device", "checks", "bench"}
// Exit status: 0 when every check passed, 1 otherwise.
#include <cstdio>
#include <string>

#include "harness.h"
#include "tests.h"

int main(int argc, char** argv) {
  using namespace harness;
  std::string json;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) json = argv[++i];
    else args.push_back(a);
  }
  if (args.empty()) {
    std::fprintf(stderr, "usage: grpst_gpu_harness test | parity DIR | bench [FORMATS] [PROMPTS] | rows | lt | wsprobe | moe | profile [--json FILE]\n");
    return 2;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    std::fprintf(stderr, "grpst_gpu_harness: no CUDA device\n");
    return 2;
  }
  std::printf("device: %s, %d SMs, %.1f GiB, L2 %.0f MiB, cc %d.%d\n", prop.name, prop.multiProcessorCount,
              prop.totalGlobalMem / 1073741824.0, prop.l2CacheSize / 1048576.0, prop.major, prop.minor);
  const std::string cmd = args[0];
  if (cmd == "test") {
    // test [GROUPS]: every group, or those named (comma-separated), e.g. `test allreduce`
    const std::string only = args.size() > 1 ? "," + args[1] + "," : "";
    const auto run = [&](const char* group, void (*fn)()) {
      if (only.empty() || only.find(std::string(",") + group + ",") != std::string::npos) fn();
    };
    run("elementwise", test_elementwise);
    run("attention", test_attention);
    run("persistent", test_persistent);
    run("linear", test_linear);
    run("bf16_ws", test_linear_bf16_ws);  // (a subset of linear)
    run("sampling", test_sampling);
    run("allreduce", test_allreduce);
    run("lora", test_lora);
    run("moe", test_moe);
    run("moe", test_moe_w8a8);
  } else if (cmd == "rows") {
    bench_ceilings();
    bench_stream_rows();
  } else if (cmd == "wsprobe") {
    bench_ceilings();
    bench_ws_probe();
    Bench::get().print();
  } else if (cmd == "lt") {
    bench_ceilings();
    bench_lt();
    Bench::get().print();
  } else if (cmd == "moe") {
    bench_moe();
    Bench::get().print();
  } else if (cmd == "profile") {
    profile_kernels();
  } else if (cmd == "parity") {
    model_parity(args.size() > 1 ? args[1] : ".carry/fixtures");
  } else if (cmd == "bench") {
    bench_ceilings();
    // GRPST_BENCH_SKIP_KERNELS=1: the whole-model rows only (a shorter run for one decode choice)
    const char* skip = std::getenv("GRPST_BENCH_SKIP_KERNELS");
    if (!(skip && skip[0] == '1')) bench_kernels();
    bench_model(args.size() > 1 ? args[1] : "bf16,int8_wo,int4_awq,fp8,int8_sq",
                args.size() > 2 ? args[2] : "1024,8192,32768");
    Bench::get().print();
  } else {
    std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
    return 2;
  }
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) Checks::get().expect("device state at exit", false, cudaGetErrorString(e));
  Checks::get().print();
  if (!json.empty()) {
    if (FILE* f = std::fopen(json.c_str(), "w")) {
      std::fprintf(f, "{\"device\":\"%s\",\"checks\":", prop.name);
      Checks::get().write_json(f);
      std::fprintf(f, ",\"bench\":");
      Bench::get().write_json(f);
      std::fprintf(f, "}\n");
      std::fclose(f);
    }
  }
  return Checks::get().failures() == 0 ? 0 : 1;
}
