// GEMMs through cuBLASLt for prefill and large batches: bf16 (fp32 or bf16 out, optional
// accumulate into the output for residual adds), fp8 e4m3 with per-tensor scale pointers, and
// int8 with int32 results. Row-major y[M,N] = x[M,K] . w[N,K]^T is the column-major product
// y^T = op_T(w) . x, the "TN" form the fp8 and int8 paths require. Descriptors and the chosen
// algorithm are cached per shape; nothing here synchronizes, so the calls can be captured in
// CUDA graphs.
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

#include "device_utils.cuh"
#include "env_switch.h"
#include "kernels.h"

namespace grpst::cuda {

namespace {
enum class GemmKind : int { bf16 = 0, fp8 = 1, int8 = 2 };
// The rows whose algorithm the GEMMs of fewer rows take (0: their own). For 2-8 rows the
// heuristic's own choice is a slower one. Decode steps of the Qwen3-8B shape on an H200 at 512
// keys, in turns (docs/benchmarks-gpu.md): int8_sq at 2 / 5 / 8 / 12 rows 4.298 / 4.331 /
// 4.532 / 4.435 ms against 3.833 / 3.920 / 4.060 / 4.183 with 16 rows' algorithm (the same int32
// sums: the same logits bit for bit); bf16 at 5 / 6 / 7 / 8 rows 4.939 / 5.010 / 5.035 / 5.208
// against 4.884 / 4.972 / 4.987 / 4.993 (twice, within 0.01 ms); fp8 at 5 / 8 rows 3.407 / 3.522
// against 3.437 / 3.551: its own.
constexpr int kLtInt8HeuristicRows = 16, kLtBf16HeuristicRows = 16, kLtFp8HeuristicRows = 0;
// kind, M, N, K, f32_out, accumulate, ldy, the rows the algorithm was chosen for
using GemmKey = std::tuple<int, int, int, int, bool, bool, int, int>;

struct GemmPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo;
};

Status lt_error(const char* op, cublasStatus_t s) {
  Status st;
  st.op = op;
  st.code = static_cast<int>(s);
  st.detail = std::string("cuBLAS status ") + std::to_string(static_cast<int>(s));
  return st;
}
#define GRPST_LT_CHECK(op, expr)                                  \
  do {                                                            \
    cublasStatus_t lt_s_ = (expr);                                \
    if (lt_s_ != CUBLAS_STATUS_SUCCESS) return lt_error(op, lt_s_); \
  } while (0)
}  // namespace

struct LtContext {
  cublasLtHandle_t handle = nullptr;
  float* one = nullptr;  // device 1.0f: the fp8 scale placeholder while choosing algorithms
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::mutex mu;
  std::map<GemmKey, GemmPlan> plans;
};

Status lt_create(LtContext** out, size_t workspace_bytes) {
  auto* ctx = new LtContext();
  cublasStatus_t s = cublasLtCreate(&ctx->handle);
  if (s != CUBLAS_STATUS_SUCCESS) {
    delete ctx;
    return lt_error("cublasLtCreate", s);
  }
  cudaError_t e = cudaMalloc(&ctx->workspace, workspace_bytes);
  if (e != cudaSuccess) {
    cublasLtDestroy(ctx->handle);
    delete ctx;
    return cuda_error("cuBLASLt workspace", e);
  }
  ctx->workspace_bytes = workspace_bytes;
  const float one = 1.f;
  if ((e = cudaMalloc(&ctx->one, sizeof(float))) != cudaSuccess ||
      (e = cudaMemcpy(ctx->one, &one, sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess) {
    cudaFree(ctx->workspace);
    cublasLtDestroy(ctx->handle);
    delete ctx;
    return cuda_error("cuBLASLt scale placeholder", e);
  }
  *out = ctx;
  return ok_status();
}

void lt_destroy(LtContext* ctx) {
  if (!ctx) return;
  for (auto& [key, p] : ctx->plans) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatrixLayoutDestroy(p.d);
    cublasLtMatmulDescDestroy(p.op);
  }
  cudaFree(ctx->workspace);
  cudaFree(ctx->one);
  cublasLtDestroy(ctx->handle);
  delete ctx;
}

namespace {

// ldy: the row stride of y (N, or more when y is a column slice of a wider matrix).
Status make_plan(LtContext* ctx, GemmKind kind, int M, int N, int K, bool f32_out, bool accumulate, int ldy,
                 GemmPlan** plan) {
  // GEMMs of fewer than R rows run the algorithm the heuristic picks for R rows, where it also
  // takes M (cublasLtMatmulAlgoCheck), else their own (kLt*HeuristicRows above;
  // GRPST_CUDA_LT_HEURISTIC_ROWS_INT8 / _BF16 / _FP8).
  const int hrows = kind == GemmKind::int8   ? env_int("GRPST_CUDA_LT_HEURISTIC_ROWS_INT8", kLtInt8HeuristicRows)
                    : kind == GemmKind::bf16 ? env_int("GRPST_CUDA_LT_HEURISTIC_ROWS_BF16", kLtBf16HeuristicRows)
                                             : env_int("GRPST_CUDA_LT_HEURISTIC_ROWS_FP8", kLtFp8HeuristicRows);
  const int hm = hrows > M ? hrows : M;
  const GemmKey key{static_cast<int>(kind), M, N, K, f32_out, accumulate, ldy, hm};
  std::lock_guard<std::mutex> lock(ctx->mu);
  auto it = ctx->plans.find(key);
  if (it != ctx->plans.end()) {
    *plan = &it->second;
    return ok_status();
  }
  GemmPlan p;
  cudaDataType_t ab, cd, scale;
  cublasComputeType_t compute;
  switch (kind) {
    case GemmKind::bf16: ab = CUDA_R_16BF; cd = f32_out ? CUDA_R_32F : CUDA_R_16BF; compute = CUBLAS_COMPUTE_32F; scale = CUDA_R_32F; break;
    case GemmKind::fp8: ab = CUDA_R_8F_E4M3; cd = f32_out ? CUDA_R_32F : CUDA_R_16BF; compute = CUBLAS_COMPUTE_32F; scale = CUDA_R_32F; break;
    default: ab = CUDA_R_8I; cd = CUDA_R_32I; compute = CUBLAS_COMPUTE_32I; scale = CUDA_R_32I; break;
  }
  GRPST_LT_CHECK("cublasLtMatmulDescCreate", cublasLtMatmulDescCreate(&p.op, compute, scale));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  GRPST_LT_CHECK("cublasLt TRANSA", cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  GRPST_LT_CHECK("cublasLt TRANSB", cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  // A = w viewed column-major as [K,N]; B = x as [K,M]; C = D = y as [N,M].
  GRPST_LT_CHECK("cublasLt layout A", cublasLtMatrixLayoutCreate(&p.a, ab, K, N, K));
  GRPST_LT_CHECK("cublasLt layout B", cublasLtMatrixLayoutCreate(&p.b, ab, K, M, K));
  GRPST_LT_CHECK("cublasLt layout C", cublasLtMatrixLayoutCreate(&p.c, cd, N, M, ldy));
  GRPST_LT_CHECK("cublasLt layout D", cublasLtMatrixLayoutCreate(&p.d, cd, N, M, ldy));
  if (kind == GemmKind::fp8) {
    // Placeholders so the heuristic sees a scaled fp8 product; the real pointers are set per call.
    const float* one = ctx->one;
    GRPST_LT_CHECK("cublasLt A scale", cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &one, sizeof(one)));
    GRPST_LT_CHECK("cublasLt B scale", cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &one, sizeof(one)));
  }
  cublasLtMatmulPreference_t pref;
  GRPST_LT_CHECK("cublasLtMatmulPreferenceCreate", cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ctx->workspace_bytes,
                                       sizeof(ctx->workspace_bytes));
  cublasLtMatmulHeuristicResult_t result = {};
  int found = 0;
  cublasStatus_t hs = CUBLAS_STATUS_NOT_SUPPORTED;
  if (hm > M) {
    cublasLtMatrixLayout_t hb = nullptr, hc = nullptr;
    if (cublasLtMatrixLayoutCreate(&hb, ab, K, hm, K) == CUBLAS_STATUS_SUCCESS &&
        cublasLtMatrixLayoutCreate(&hc, cd, N, hm, ldy) == CUBLAS_STATUS_SUCCESS &&
        cublasLtMatmulAlgoGetHeuristic(ctx->handle, p.op, p.a, hb, hc, hc, pref, 1, &result, &found) ==
            CUBLAS_STATUS_SUCCESS &&
        found > 0) {
      cublasLtMatmulHeuristicResult_t checked = {};
      hs = cublasLtMatmulAlgoCheck(ctx->handle, p.op, p.a, p.b, p.c, p.d, &result.algo, &checked);
      if (hs == CUBLAS_STATUS_SUCCESS && checked.workspaceSize > ctx->workspace_bytes) hs = CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (hb) cublasLtMatrixLayoutDestroy(hb);
    if (hc) cublasLtMatrixLayoutDestroy(hc);
  }
  if (hs != CUBLAS_STATUS_SUCCESS) {
    found = 0;
    hs = cublasLtMatmulAlgoGetHeuristic(ctx->handle, p.op, p.a, p.b, p.c, p.d, pref, 1, &result, &found);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatrixLayoutDestroy(p.d);
    cublasLtMatmulDescDestroy(p.op);
    Status st = lt_error("cublasLtMatmulAlgoGetHeuristic", hs == CUBLAS_STATUS_SUCCESS ? CUBLAS_STATUS_NOT_SUPPORTED : hs);
    st.detail += " (no algorithm for M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) + ")";
    return st;
  }
  p.algo = result.algo;
  auto ins = ctx->plans.emplace(key, p);
  *plan = &ins.first->second;
  return ok_status();
}

}  // namespace

Status gemm_bf16(LtContext* ctx, const bf16* x, const bf16* w, void* y, bool f32_out, bool accumulate,
                 int M, int N, int K, const Exec& ex, int ldy) {
  if (M == 0) return ok_status();
  if (ldy != 0 && ldy < N) return invalid("gemm_bf16", "ldy must be at least N");
  GemmPlan* p;
  GRPST_TRY(make_plan(ctx, GemmKind::bf16, M, N, K, f32_out, accumulate, ldy ? ldy : N, &p));
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  GRPST_LT_CHECK("gemm_bf16", cublasLtMatmul(ctx->handle, p->op, &alpha, w, p->a, x, p->b, &beta, y, p->c, y,
                                             p->d, &p->algo, ctx->workspace, ctx->workspace_bytes, ex.stream));
  return ok_status();
}

Status gemm_fp8(LtContext* ctx, const uint8_t* xq, const uint8_t* wq, const float* x_scale,
                const float* w_scale, void* y, bool accumulate, int M, int N, int K, const Exec& ex,
                bool f32_out) {
  if (M == 0) return ok_status();
  GemmPlan* p;
  GRPST_TRY(make_plan(ctx, GemmKind::fp8, M, N, K, f32_out, accumulate, N, &p));
  std::lock_guard<std::mutex> lock(ctx->mu);  // the scale pointers live in the shared descriptor
  GRPST_LT_CHECK("gemm_fp8 A scale", cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof(w_scale)));
  GRPST_LT_CHECK("gemm_fp8 B scale", cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof(x_scale)));
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  GRPST_LT_CHECK("gemm_fp8", cublasLtMatmul(ctx->handle, p->op, &alpha, wq, p->a, xq, p->b, &beta, y, p->c, y,
                                            p->d, &p->algo, ctx->workspace, ctx->workspace_bytes, ex.stream));
  return ok_status();
}

Status gemm_int8(LtContext* ctx, const int8_t* xq, const int8_t* wq, int32_t* acc, int M, int N, int K,
                 const Exec& ex) {
  if (M == 0) return ok_status();
  GemmPlan* p;
  GRPST_TRY(make_plan(ctx, GemmKind::int8, M, N, K, false, false, N, &p));
  const int32_t alpha = 1, beta = 0;
  GRPST_LT_CHECK("gemm_int8", cublasLtMatmul(ctx->handle, p->op, &alpha, wq, p->a, xq, p->b, &beta, acc, p->c, acc,
                                             p->d, &p->algo, ctx->workspace, ctx->workspace_bytes, ex.stream));
  return ok_status();
}

}  // namespace grpst::cuda
