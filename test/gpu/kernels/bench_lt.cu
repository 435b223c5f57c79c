// The harness's `lt`: every algorithm cuBLASLt's heuristic proposes for the Qwen3-8B projections
// (bf16 at 64 decode rows and at prefill chunks of 1,024 / 8,192 tokens, fp8 and int8 at 64 rows),
// each timed over weight copies that do not fit the L2, against the heuristic's first choice
// (what gemm_lt.cu runs without tuning). Rows: "lt <shape> <dtype> M=<m>": the first choice's
// time and the fastest's, and which of the candidates that was. Then the activation kernels
// around those GEMMs (norm prologue, fp8 / int8 quantization, int8's int32 epilogue) at 16, 64
// and 1,024 rows ("act" rows).
#include <cublasLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "device_fill.h"
#include "harness.h"
#include "tests.h"
#include "weights.h"

namespace harness {
namespace cu = grpst::cuda;

double bench_graph_ms(const std::function<bool(int)>& fn, int launches, cudaStream_t s);
std::vector<DevWeight> bench_weight_copies(cu::WeightFormat f, int N, int K, size_t* bytes);
extern double g_copy_gbs;

namespace {

struct LtShape {
  const char* name;
  int N, K;
  bool accumulate;  // o_proj / down_proj add into the residual stream (beta = 1)
  bool f32_out;     // the LM head's fp32 logits
};

enum class LtKind { bf16, fp8, int8 };

const char* kind_name(LtKind k) { return k == LtKind::bf16 ? "bf16" : k == LtKind::fp8 ? "fp8" : "int8"; }

// One shape: descriptors as gemm_lt.cu makes them (TN, column-major y^T = w^T x), up to 16
// heuristic candidates, each timed.
void sweep_shape(cublasLtHandle_t h, void* workspace, size_t ws_bytes, const float* one, LtKind kind, const LtShape& sh,
                 int M, cudaStream_t s) {
  const cu::WeightFormat wf = kind == LtKind::bf16 ? cu::WeightFormat::bf16
                              : kind == LtKind::fp8 ? cu::WeightFormat::fp8
                                                    : cu::WeightFormat::int8_sq;
  size_t wb = 0;
  const std::vector<DevWeight> ws = bench_weight_copies(wf, sh.N, sh.K, &wb);
  const int copies = static_cast<int>(ws.size());
  const size_t in_elem = kind == LtKind::bf16 ? 2 : 1;
  const size_t out_elem = kind == LtKind::int8 || sh.f32_out ? 4 : 2;
  Dev<uint8_t> x(size_t(M) * sh.K * in_elem), y(size_t(M) * sh.N * out_elem);
  fill_bytes(x.p, x.n, 5);
  cudaMemset(y.p, 0, y.n);
  cudaDataType_t ab = CUDA_R_16BF, cd = sh.f32_out ? CUDA_R_32F : CUDA_R_16BF, scale = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  if (kind == LtKind::fp8) ab = CUDA_R_8F_E4M3;
  if (kind == LtKind::int8) {
    ab = CUDA_R_8I;
    cd = CUDA_R_32I;
    scale = CUDA_R_32I;
    compute = CUBLAS_COMPUTE_32I;
  }
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t a, b, c;
  cublasLtMatmulDescCreate(&op, compute, scale);
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
  if (kind == LtKind::fp8) {
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &one, sizeof(one));
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &one, sizeof(one));
  }
  cublasLtMatrixLayoutCreate(&a, ab, sh.K, sh.N, sh.K);
  cublasLtMatrixLayoutCreate(&b, ab, sh.K, M, sh.K);
  cublasLtMatrixLayoutCreate(&c, cd, sh.N, M, sh.N);
  cublasLtMatmulPreference_t pref;
  cublasLtMatmulPreferenceCreate(&pref);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes));
  cublasLtMatmulHeuristicResult_t results[16] = {};
  int found = 0;
  cublasLtMatmulAlgoGetHeuristic(h, op, a, b, c, c, pref, 16, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  const float alpha_f = 1.f, beta_f = sh.accumulate ? 1.f : 0.f;
  const int32_t alpha_i = 1, beta_i = 0;
  const void* alpha = kind == LtKind::int8 ? static_cast<const void*>(&alpha_i) : &alpha_f;
  const void* beta = kind == LtKind::int8 ? static_cast<const void*>(&beta_i) : &beta_f;
  std::vector<double> times;
  for (int i = 0; i < found; ++i) {
    const cublasLtMatmulAlgo_t* algo = &results[i].algo;
    const double ms = bench_graph_ms([&](int r) {
      return cublasLtMatmul(h, op, alpha, ws[r % copies].w.data, a, x.p, b, beta, y.p, c, y.p, c, algo, workspace, ws_bytes,
                            s) == CUBLAS_STATUS_SUCCESS;
    }, M >= 1024 ? 2 * copies : 4 * copies, s);
    times.push_back(ms);
  }
  cudaGetLastError();  // a refused candidate leaves nothing behind that later rows should see
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(c);
  cublasLtMatmulDescDestroy(op);
  const std::string row = std::string("lt ") + sh.name + " " + kind_name(kind) + " M=" + std::to_string(M);
  if (found == 0 || times[0] <= 0) {
    Bench::get().add("lt", row, 0, "us", "no algorithm");
    return;
  }
  int best = 0;
  for (int i = 1; i < found; ++i)
    if (times[i] > 0 && times[i] < times[best]) best = i;
  const double flop = 2.0 * M * sh.N * sh.K;
  char note[400];
  int len = std::snprintf(note, sizeof note, "first %.1f us (%.1f%% of copy bw, %.0f TFLOP/s), fastest #%d of %d %.1f us (%.1f%%, %.0f TFLOP/s):",
                          times[0] * 1e3, 100.0 * wb / (times[0] * 1e-3) / 1e9 / g_copy_gbs, flop / (times[0] * 1e-3) / 1e12,
                          best, found, times[best] * 1e3, 100.0 * wb / (times[best] * 1e-3) / 1e9 / g_copy_gbs,
                          flop / (times[best] * 1e-3) / 1e12);
  for (int i = 0; i < found && len < static_cast<int>(sizeof note) - 12; ++i)
    len += std::snprintf(note + len, sizeof note - len, " %.1f", times[i] * 1e3);
  Bench::get().add("lt", row, times[0] / times[best], "x", note);
}

// The activation kernels around the batched GEMMs at M rows: the RMSNorm prologue (bf16 for
// cuBLASLt), fp8 / int8 quantization (with the norm: qkv / gate_up; plain: o_proj / down_proj's
// K) and int8_sq's int32 epilogue (store, SwiGLU, residual add).
void bench_activation_kernels(int M, cudaStream_t s) {
  const int kmax = 12288, nmax = 24576;
  Dev<uint16_t> x(size_t(M) * kmax), xn(size_t(M) * kmax), y(size_t(M) * nmax);
  Dev<uint8_t> xq(size_t(M) * kmax);
  Dev<float> xs(M), norm(std::vector<float>(kmax, 1.f)), scale(std::vector<float>{0.05f}), wsc(std::vector<float>(nmax, 0.01f));
  Dev<int32_t> acc(size_t(M) * nmax);
  fill_bf16(x.as<cu::bf16>(), x.n, 1.f, 0.f, 21);
  fill_bf16(y.as<cu::bf16>(), y.n, 1.f, 0.f, 22);
  cudaMemset(acc.p, 0, acc.n * 4);
  const cu::Exec ex{s, true};
  // each kernel with a row per block (the default) and with a warp per row (the kernels before)
  const auto row = [&](const std::string& name, double bytes, const std::function<bool()>& fn) {
    for (const bool warp_rows : {false, true}) {
      if (warp_rows && name.rfind("dequant", 0) == 0) continue;  // one kernel only
      if (warp_rows) setenv("GRPST_CUDA_ACT_WARP_PER_ROW", "1", 1);
      const double ms = bench_graph_ms([&](int) { return fn(); }, 20, s);
      unsetenv("GRPST_CUDA_ACT_WARP_PER_ROW");
      char note[160];
      std::snprintf(note, sizeof note, "%.2f us, %.0f GB/s (bytes read + written once)", ms * 1e3, bytes / (ms * 1e-3) / 1e9);
      Bench::get().add("act", name + " M=" + std::to_string(M) + (warp_rows ? " warp per row" : ""), ms * 1e3, "us", note);
    }
  };
  for (const int K : {4096, 12288}) {
    cu::LinearIn in;
    in.x = x.as<cu::bf16>();
    in.norm_w = K == 4096 ? norm.p : nullptr;  // the normed inputs are the hidden size
    const std::string k = " K=" + std::to_string(K) + (in.norm_w ? " +norm" : "");
    const double rd = 2.0 * M * K;
    if (in.norm_w)
      row("linear_prologue" + k, rd + 2.0 * M * K, [&] { return cu::linear_prologue(in, xn.as<cu::bf16>(), M, K, ex).ok(); });
    row("quantize_fp8" + k, rd + 1.0 * M * K, [&] { return cu::quantize_fp8(in, scale.p, xq.p, M, K, ex).ok(); });
    row("quantize_int8_rows" + k, rd + 1.0 * M * K,
        [&] { return cu::quantize_int8_rows(in, reinterpret_cast<int8_t*>(xq.p), xs.p, M, K, ex).ok(); });
  }
  for (const auto& [N, epi] : {std::pair<int, cu::Epilogue>{6144, cu::Epilogue::store}, {24576, cu::Epilogue::swiglu},
                               {4096, cu::Epilogue::residual_add}}) {
    cu::LinearOut out;
    out.y = y.p;
    out.epi = epi;
    const double bytes = 4.0 * M * N + (epi == cu::Epilogue::swiglu ? 1.0 : epi == cu::Epilogue::residual_add ? 4.0 : 2.0) * M * N;
    row("dequant_int32 N=" + std::to_string(N) + (epi == cu::Epilogue::swiglu ? " swiglu" : epi == cu::Epilogue::residual_add ? " residual" : ""),
        bytes, [&] { return cu::dequant_int32(acc.p, xs.p, wsc.p, out, M, N, ex).ok(); });
  }
}

}  // namespace

void bench_lt() {
  cudaStream_t s;
  cudaStreamCreate(&s);
  cublasLtHandle_t h;
  if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    Checks::get().expect("bench lt: cublasLtCreate", false);
    return;
  }
  const size_t ws_bytes = size_t(64) << 20;
  Dev<uint8_t> workspace(ws_bytes);
  const std::vector<float> one_h{1.f};
  Dev<float> one(one_h);
  const LtShape shapes[] = {{"qkv 6144x4096", 6144, 4096, false, false},
                            {"o 4096x4096", 4096, 4096, true, false},
                            {"gate_up 24576x4096", 24576, 4096, false, false},
                            {"down 4096x12288", 4096, 12288, true, false},
                            {"lm_head 151936x4096", 151936, 4096, false, true}};
  const char* act_only = std::getenv("GRPST_BENCH_LT_ACT_ONLY");
  for (const LtShape& sh : shapes) {
    if (act_only && act_only[0] == '1') break;
    const bool head = sh.f32_out;
    for (int M : {16, 32, 64, 1024, 8192}) {
      if (head && M > 64) continue;  // the LM head runs on the rows that take logits
      sweep_shape(h, workspace.p, ws_bytes, one.p, LtKind::bf16, sh, M, s);
    }
    if (head) continue;
    sweep_shape(h, workspace.p, ws_bytes, one.p, LtKind::fp8, sh, 64, s);
    sweep_shape(h, workspace.p, ws_bytes, one.p, LtKind::int8, {sh.name, sh.N, sh.K, false, false}, 64, s);
  }
  cublasLtDestroy(h);
  // GRPST_BENCH_LT_ACT_ONLY=1 skips the candidates above (a shorter run for the activation kernels)
  for (const int M : {16, 64, 1024}) bench_activation_kernels(M, s);
  cudaStreamDestroy(s);
}

}  // namespace harness
