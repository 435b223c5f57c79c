// Whole-model benches through the CUDA forward on a Qwen3-8B-shaped model with random weights:
// batch-1 decode per weight format (CUDA graph, programmatic dependent launch) against its
// roofline, a 64-sequence decode step, and prefill TTFT for long prompts.
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "../../../native/src/kernels/cuda/env_switch.h"
#include "../../../native/src/runtime/cuda_forward.h"
#include "bench_persistent.h"
#include "bench_steps.h"
#include "bench_sweeps.h"
#include "device_fill.h"
#include "harness.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;
extern double g_copy_gbs;

namespace {

struct Allocs {
  std::vector<void*> ptrs;
  size_t bytes = 0;
  void* get(size_t n) {
    void* p = nullptr;
    if (cudaMalloc(&p, n ? n : 16) != cudaSuccess) return nullptr;
    ptrs.push_back(p);
    bytes += n;
    return p;
  }
  ~Allocs() { for (void* p : ptrs) cudaFree(p); }
};

struct Model {
  cu::ModelDims d;
  Allocs a;
  cu::ModelWeights w;
  cu::KvCache kv;
  size_t streamed_bytes = 0;  // read once per decode step: linears, scales, norms, lm_head
  int num_blocks = 0;
  bool int4_zeros = false;  // int4 weights with zero points (asymmetric, as AWQ engines are)
};

const cu::ModelDims kQwen3_8B = [] {
  cu::ModelDims d;
  d.hidden = 4096; d.intermediate = 12288; d.layers = 36; d.heads = 32; d.kv_heads = 8; d.head_dim = 128; d.vocab = 151936;
  return d;
}();

bool make_weight(Model& m, cu::WeightFormat f, int N, int K, uint64_t seed, cu::Weight* out) {
  cu::Weight& w = *out;
  w.format = f;
  w.N = N;
  w.K = K;
  const size_t n = static_cast<size_t>(N) * K;
  switch (f) {
    case cu::WeightFormat::bf16: {
      auto* p = static_cast<cu::bf16*>(m.a.get(n * 2));
      if (!p) return false;
      fill_bf16(p, n, 1.7f / std::sqrt(static_cast<float>(K)), 0, seed);
      w.data = p;
      m.streamed_bytes += n * 2;
      break;
    }
    case cu::WeightFormat::int8_wo:
    case cu::WeightFormat::int8_sq: {
      void* p = m.a.get(n);
      auto* cs = static_cast<float*>(m.a.get(N * 4));
      if (!p || !cs) return false;
      fill_bytes(p, n, seed);
      fill_f32(cs, N, 0.3f / 127 / std::sqrt(static_cast<float>(K)), 1.f / 127 / std::sqrt(static_cast<float>(K)), seed);
      w.data = p;
      w.channel_scale = cs;
      m.streamed_bytes += n + N * 4;
      break;
    }
    case cu::WeightFormat::int4_awq: {
      void* p = m.a.get(n / 2);
      auto* gs = static_cast<cu::bf16*>(m.a.get(n / 128 * 2));
      if (!p || !gs) return false;
      fill_bytes(p, n / 2, seed);
      fill_bf16(gs, n / 128, 0.05f / std::sqrt(static_cast<float>(K)), 0.2f / std::sqrt(static_cast<float>(K)), seed);
      w.data = p;
      w.group_scale = gs;
      w.group_size = 128;
      m.streamed_bytes += n / 2 + n / 128 * 2;
      if (m.int4_zeros) {  // bf16(128 + z): 128.5-142.5 rounds to whole z in 0..15
        auto* gz = static_cast<cu::bf16*>(m.a.get(n / 128 * 2));
        if (!gz) return false;
        fill_bf16(gz, n / 128, 7.f, 135.5f, seed + 1);
        w.group_zero = gz;
        m.streamed_bytes += n / 128 * 2;
      }
      break;
    }
    case cu::WeightFormat::fp8: {
      auto* p = static_cast<uint8_t*>(m.a.get(n));
      // The scales apart, as the runtime uploads them (cuBLASLt refuses an unaligned scale pointer).
      auto* ws = static_cast<float*>(m.a.get(4));
      auto* xs = static_cast<float*>(m.a.get(4));
      if (!p || !ws || !xs) return false;
      fill_e4m3(p, n, 64.f, seed);
      fill_f32(ws, 1, 0.f, 1.7f / std::sqrt(static_cast<float>(K)) / 64.f, 0);
      fill_f32(xs, 1, 0.f, 0.1f, 0);
      w.data = p;
      w.w_scale = ws;
      w.x_scale = xs;
      m.streamed_bytes += n;
      break;
    }
  }
  return true;
}

// A KV cache of `blocks` blocks of 16 keys for every layer of m, random (bf16) or finite e4m3
// (fp8) values with unit scales; layer l's K and V from seeds seed + l and seed + 100 + l.
bool make_kv(Model& m, int blocks, cu::KvDtype dtype, uint64_t seed, cu::KvCache* kv) {
  const auto& d = m.d;
  kv->geo = cu::KvGeometry{blocks, 16, d.kv_heads, d.head_dim, dtype};
  const size_t n = size_t(blocks) * d.kv_heads * 16 * d.head_dim;  // elements of one layer's K
  const size_t bytes = n * (dtype == cu::KvDtype::bf16 ? 2 : 1);
  for (int l = 0; l < d.layers; ++l) {
    void* kv_l[2] = {m.a.get(bytes), m.a.get(bytes)};
    for (int i = 0; i < 2; ++i) {
      if (!kv_l[i]) return false;
      if (dtype == cu::KvDtype::bf16) fill_bf16(static_cast<cu::bf16*>(kv_l[i]), n, 1.f, 0, seed + 100 * i + l);
      else fill_e4m3(static_cast<uint8_t*>(kv_l[i]), n, 1.f, seed + 100 * i + l);
    }
    kv->layers.push_back(cu::KvLayer{kv_l[0], kv_l[1], 1.f, 1.f});
  }
  return cudaDeviceSynchronize() == cudaSuccess;
}

bool build(Model& m, cu::WeightFormat f, cu::WeightFormat head, int num_blocks) {
  m.d = kQwen3_8B;
  const auto& d = m.d;
  const int H = d.hidden, I = d.intermediate, hd = d.head_dim, qkv = (d.heads + 2 * d.kv_heads) * hd;
  auto norm = [&](int n, uint64_t seed) {
    auto* p = static_cast<float*>(m.a.get(n * 4));
    if (p) fill_f32(p, n, 0.1f, 1.f, seed);
    m.streamed_bytes += n * 4;
    return static_cast<const float*>(p);
  };
  m.w.embed = static_cast<cu::bf16*>(m.a.get(size_t(d.vocab) * H * 2));
  if (!m.w.embed) return false;
  fill_bf16(const_cast<cu::bf16*>(m.w.embed), size_t(d.vocab) * H, 1.f, 0, 7);
  m.w.final_norm = norm(H, 8);
  if (!make_weight(m, head, d.vocab, H, 9, &m.w.lm_head)) return false;
  for (int l = 0; l < d.layers; ++l) {
    cu::LayerWeights lw;
    lw.input_norm = norm(H, 100 + l);
    lw.post_norm = norm(H, 200 + l);
    lw.q_norm = norm(hd, 300 + l);
    lw.k_norm = norm(hd, 400 + l);
    if (!make_weight(m, f, qkv, H, 1000 + l, &lw.qkv) || !make_weight(m, f, H, d.heads * hd, 2000 + l, &lw.o) ||
        !make_weight(m, f, 2 * I, H, 3000 + l, &lw.gate_up) || !make_weight(m, f, H, I, 4000 + l, &lw.down))
      return false;
    m.w.layers.push_back(lw);
  }
  std::vector<float> inv(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv[i] = static_cast<float>(1.0 / std::pow(1e6, 2.0 * i / hd));
  auto* dinv = static_cast<float*>(m.a.get(inv.size() * 4));
  cudaMemcpy(dinv, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice);
  m.w.inv_freq = dinv;
  m.num_blocks = num_blocks;
  return make_kv(m, num_blocks, cu::KvDtype::bf16, 500, &m.kv);
}

cu::WeightFormat parse_format(const std::string& s) {
  if (s == "int8_wo") return cu::WeightFormat::int8_wo;
  if (s == "int4_awq") return cu::WeightFormat::int4_awq;
  if (s == "fp8") return cu::WeightFormat::fp8;
  if (s == "int8_sq") return cu::WeightFormat::int8_sq;
  return cu::WeightFormat::bf16;
}

}  // namespace

void bench_model(const std::string& formats, const std::string& prefill_lengths) {
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  int sms = 132;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cu::LtContext* lt = nullptr;
  if (!Checks::get().status("model lt_create", cu::lt_create(&lt, 64u << 20))) return;
  const int b1_ctx = 512, serve_ctx = 1536, serve_b = 64;
  std::vector<int> prompts;
  {
    std::stringstream ss(prefill_lengths);
    std::string t;
    while (std::getline(ss, t, ',')) if (!t.empty()) prompts.push_back(std::stoi(t));
  }
  int max_prompt = 0;
  for (int p : prompts) max_prompt = std::max(max_prompt, p);
  std::stringstream fs(formats);
  std::string spec;
  while (std::getline(fs, spec, ',')) {
    // "int4_awq", "int4_awq:head" (the LM head quantized too), "int4_awq:zeros" (with zero points),
    // "int4_awq:zeros:head"
    std::stringstream parts(spec);
    std::string fname, flag;
    std::getline(parts, fname, ':');
    bool quant_head = false, zeros = false;
    while (std::getline(parts, flag, ':')) {
      if (flag == "head") quant_head = true;
      if (flag == "zeros") zeros = true;
    }
    const cu::WeightFormat f = parse_format(fname);
    const bool is_bf16 = f == cu::WeightFormat::bf16;
    const int blocks = std::max(serve_b * ((serve_ctx + 15) / 16), is_bf16 ? (max_prompt + 15) / 16 : 0);
    Model m;
    m.int4_zeros = zeros && f == cu::WeightFormat::int4_awq;
    if (!Checks::get().expect("model build " + spec, build(m, f, quant_head ? f : cu::WeightFormat::bf16, blocks))) continue;
    cu::ForwardLimits lim;
    lim.max_tokens = is_bf16 ? std::max(max_prompt, serve_b) : serve_b;
    lim.max_logits = serve_b;
    std::unique_ptr<cu::Forward> fwd;
    if (!Checks::get().status("Forward::create " + spec, cu::Forward::create(m.d, m.w, lim, lt, sms, &fwd)) ||
        !Checks::get().status("Forward::set_kv " + spec, fwd->set_kv(m.kv)))
      continue;
    Dev<float> logits(size_t(serve_b) * m.d.vocab);
    StepBuffers bufs, bufs1, bufs64;  // one per step kept in use (upload reallocates on a new size)
    const double kv_tok = 2.0 * m.d.layers * m.d.kv_heads * m.d.head_dim * 2;  // bytes of K+V per cached token
    const std::string label = fname + (m.int4_zeros ? " (zero points)" : "") + (quant_head ? " (+lm_head)" : "");

    auto report_decode = [&](const std::string& what, int B, int ctx, double ms) {
      if (ms <= 0) return;
      const double bytes = m.streamed_bytes + kv_tok * B * ctx + 2.0 * B * m.d.hidden;
      const double roof_ms = bytes / (g_copy_gbs * 1e9) * 1e3;
      char note[200];
      std::snprintf(note, sizeof note, "%.3f ms/step; roofline %.3f ms (%.2f GB/step) -> %.1f%% of roofline", ms, roof_ms,
                    bytes / 1e9, 100.0 * roof_ms / ms);
      Bench::get().add("decode", label + " " + what, B * 1000.0 / ms, "tok/s", note);
    };
    // The previous kernels (bf16 GEMV / skinny, qk_norm_rope_kv + register-streaming attention +
    // reduce, not the tensor-core decode attention) on the same model, for the before/after in one run.
    auto previous = [&](bool on) {
      fwd->set_fused_decode(!on && new_decode_kernels());
      const char* mma = std::getenv("GRPST_CUDA_MMA_DECODE");  // previous = register-streaming attention too
      fwd->set_mma_decode(!on && !(mma && mma[0] == '0'));
      if (on) setenv("GRPST_CUDA_LEGACY_DECODE", "1", 1);
      else if (new_decode_kernels()) unsetenv("GRPST_CUDA_LEGACY_DECODE");
    };
    cu::StepInput in1 = decode_step(bufs1, 1, b1_ctx, m.d.vocab);
    report_decode("b1 ctx512 graph+pdl", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
    // GRPST_BENCH_STEP_ONLY=1: the b1 and b64 steps alone, one graph each (scripts/gpu/run.sh stage
    // timeline records their kernels); quantized heads and zero points measure only those steps too.
    // Reads before the wait on the previous kernel of what an earlier one wrote (device_utils.cuh):
    // q/k norm + RoPE's weights and cos / sin, o_proj / down_proj's residual; and one token's x
    // staged by o_proj / down_proj three chunks' loads at a time, and the epilogue's scales. The same bits.
    const std::vector<std::pair<int, int>> b1_b64 = {{1, b1_ctx}, {serve_b, serve_ctx}};
    const std::vector<std::pair<int, int>> b1_b8_b64 = {{1, b1_ctx}, {8, b1_ctx}, {serve_b, serve_ctx}};
    auto early_reads_in_turns = [&] {
      // GRPST_BENCH_TURNS_ENV="VAR=off/on;...": those switches instead, at 1 and 8 rows or those of
      // GRPST_BENCH_TURNS_ROWS ("16,32,64"), 512 keys (logits within 0.5: sums may change order).
      if (const char* extra = std::getenv("GRPST_BENCH_TURNS_ENV")) {
        const auto rows = turns_rows(serve_b, b1_ctx);
        std::stringstream es(extra);
        std::string item;
        while (std::getline(es, item, ';')) {
          const size_t eq = item.find('='), sl = item.find('/');
          if (eq == std::string::npos || sl == std::string::npos || sl < eq) continue;
          const std::string var = item.substr(0, eq), off = item.substr(eq + 1, sl - eq - 1), on = item.substr(sl + 1);
          compare_env_in_turns(label, var + "=" + off, var + "=" + on, rows,
                               {var.c_str(), off.c_str(), on.c_str()}, *fwd, m.d.vocab, report_decode, logits.p, s, 0.5);
        }
        return;
      }
      compare_env_in_turns(label, "q/k norm coefficients after the wait", "q/k norm coefficients before the wait", b1_b64,
                           {"GRPST_CUDA_QK_COEFFS_EARLY", "0", "1"}, *fwd, m.d.vocab, report_decode, logits.p, s);
      compare_env_in_turns(label, "residual loaded in the epilogue", "residual loaded before the wait", b1_b8_b64,
                           {"GRPST_CUDA_RESIDUAL_SETTLED", "0", "1"}, *fwd, m.d.vocab, report_decode, logits.p, s);
      compare_env_in_turns(label, "one token's x staged a chunk at a time", "one token's x staged three chunks at a time",
                           {{1, b1_ctx}}, {"GRPST_CUDA_STREAM_ONE_ROW_BATCH", "0", "1"}, *fwd, m.d.vocab, report_decode,
                           logits.p, s);
      if (!is_bf16 && f != cu::WeightFormat::int4_awq)  // the formats with epilogue scales
        compare_env_in_turns(label, "epilogue scales loaded in the epilogue", "epilogue scales copied before the wait",
                             {{1, b1_ctx}, {8, b1_ctx}}, {"GRPST_CUDA_STREAM_EPI_EARLY", "0", "1"}, *fwd, m.d.vocab,
                             report_decode, logits.p, s);
      compare_in_turns(label, "neither read before the wait", "both read before the wait", b1_b8_b64,
                       [&](bool on) {
                         setenv("GRPST_CUDA_QK_COEFFS_EARLY", on ? "1" : "0", 1);
                         setenv("GRPST_CUDA_RESIDUAL_SETTLED", on ? "1" : "0", 1);
                       },
                       *fwd, m.d.vocab, report_decode, logits.p, s);
      unsetenv("GRPST_CUDA_QK_COEFFS_EARLY");
      unsetenv("GRPST_CUDA_RESIDUAL_SETTLED");
    };
    // Where small batches leave the streaming GEMV for cuBLASLt (bf16, fp8, int8_sq): both in turns
    // at 1-8 rows (GRPST_BENCH_TURNS_ROWS); the logits within rounding (fp8's wider: see below).
    const bool lt_format = is_bf16 || f == cu::WeightFormat::fp8 || f == cu::WeightFormat::int8_sq;
    auto lt_from = [&](int rows) {  // cuBLASLt from `rows` + 1 decode rows
      if (is_bf16) fwd->set_bf16_stream_max_rows(rows);
      else fwd->set_skinny_max_rows(cu::kDefaultSkinnyMaxRows, rows, rows);
    };
    auto lt_defaults = [&] {
      fwd->set_bf16_stream_max_rows(cu::kDefaultBf16StreamMaxRows);
      fwd->set_skinny_max_rows(cu::kDefaultSkinnyMaxRows, cu::kDefaultFp8SkinnyMaxRows, cu::kDefaultInt8SqSkinnyMaxRows);
    };
    // The logits are compared, not gated on the usual 0.1 for fp8: its products summed in another
    // order (the tensor cores' fp8 accumulation is not exact) flip e4m3 roundings of the next
    // layer's activations, and 36 layers of random weights grow that to ~0.2 (each kernel is
    // checked against its twin in the kernel tests). int8_sq's sums are exact: the same bits.
    auto crossover_in_turns = [&](const std::vector<std::pair<int, int>>& rows) {
      if (!lt_format || quant_head || !new_decode_kernels()) return;
      compare_in_turns(label, "streaming GEMV", "cuBLASLt", rows, [&](bool on) { lt_from(on ? 1 : 8); }, *fwd, m.d.vocab,
                       report_decode, logits.p, s, f == cu::WeightFormat::fp8 ? 0.5 : 0.1);
      lt_defaults();
    };
    const char* step_only = std::getenv("GRPST_BENCH_STEP_ONLY");
    if (quant_head || m.int4_zeros || (step_only && step_only[0] == '1')) {
      cu::StepInput in64 = decode_step(bufs64, serve_b, serve_ctx, m.d.vocab);
      report_decode("b64 ctx1536 graph+pdl", serve_b, serve_ctx, decode_ms(*fwd, in64, logits.p, true, true, s));
      // GRPST_BENCH_CROSSOVER=1: the streaming GEMV against cuBLASLt at each of those rows in turns;
      // =lt: cuBLASLt from two rows through the turns below (its own switches, e.g.
      // GRPST_CUDA_LT_HEURISTIC_ROWS_INT8, compared where it runs)
      const char* crossover = std::getenv("GRPST_BENCH_CROSSOVER");
      if (crossover && crossover[0] == '1') crossover_in_turns(turns_rows(8, b1_ctx));
      if (crossover && crossover[0] == 'l' && lt_format) lt_from(1);
      // GRPST_BENCH_STEP_TURNS=1: and the early reads in turns
      if (const char* turns = std::getenv("GRPST_BENCH_STEP_TURNS"); turns && turns[0] == '1') early_reads_in_turns();
      lt_defaults();
      continue;
    }
    early_reads_in_turns();
    // Switches that change no arithmetic, each setting measured in turns, the step logits the same
    // bits either way: q/k norm + RoPE inside the tensor-core attention (its default by format), the
    // streaming GEMV's second round of weights issued before its wait, and fp8 / int8_sq
    // activations divided by __fdiv_rn in its staging (div_by by default).
    const int qkv_rows_default = fwd->mma_qkv_max_rows();  // the format's default (default_mma_qkv_max_rows)
    compare_in_turns(label, "q/k norm + RoPE kernel before the attention", "q/k norm + RoPE inside the attention", b1_b64,
                     [&](bool on) { fwd->set_mma_qkv_max_rows(on ? serve_b : 0); }, *fwd, m.d.vocab, report_decode, logits.p, s);
    fwd->set_mma_qkv_max_rows(qkv_rows_default);
    // The GEMM paths' norm prologue / activation quantization with a row per block or a warp per
    // row (their sums of squares in another order: the logits compared within rounding)
    compare_env_in_turns(label, "activations a warp per row", "activations a row per block", {{16, serve_ctx}, {serve_b, serve_ctx}},
                         {"GRPST_CUDA_ACT_WARP_PER_ROW", "1", "0"}, *fwd, m.d.vocab, report_decode, logits.p,
                         s, f == cu::WeightFormat::fp8 ? 0.5 : 0.1);
    if (new_decode_kernels()) {
      // rows the streaming GEMV takes: 1-4 (int8_sq 1-3), 5-8 int8_wo / int4 (the others: cuBLASLt)
      std::vector<std::pair<int, int>> streamed = {{1, b1_ctx}, {f == cu::WeightFormat::int8_sq ? 3 : 4, b1_ctx}};
      if (f == cu::WeightFormat::int8_wo || f == cu::WeightFormat::int4_awq) streamed.push_back({8, b1_ctx});
      compare_env_in_turns(label, "one weight round before the wait", "two weight rounds before the wait", streamed,
                           {"GRPST_CUDA_STREAM_EARLY_ROUNDS", "1", "2"}, *fwd, m.d.vocab,
                           report_decode, logits.p, s);
      // One token's x loaded for each pass of the prologue (row statistics, amax, staging) or once.
      compare_env_in_turns(label, "x loaded for each pass", "x loaded once", {{1, b1_ctx}},
                           {"GRPST_CUDA_STREAM_STAGE_ONCE", "0", "1"}, *fwd, m.d.vocab, report_decode, logits.p, s);
      // The prologue (x staged, the block's row statistics) a row at a time or all rows at once:
      // what several tokens change (one token takes the same code either way).
      compare_env_in_turns(label, "prologue a row at a time", "prologue rows at once", {{2, b1_ctx}, {4, b1_ctx}, {8, b1_ctx}},
                           {"GRPST_CUDA_PROLOGUE_ALL_ROWS", "0", "1"}, *fwd, m.d.vocab,
                           report_decode, logits.p, s);
      {
        // Streaming GEMV blocks of more than ~97 KB (down_proj at 4 rows of bf16 / int8_wo / int4,
        // fp8 / int8_sq at 8) run one per SM: streamed anyway, or not (their other kernel runs).
        // (The largest shared-memory carveout, asked for them, made every step slower.)
        const std::vector<std::pair<int, int>> few = {{2, b1_ctx}, {4, b1_ctx}, {8, b1_ctx}};
        compare_env_in_turns(label, "streaming GEMV blocks up to 110 KB", "streaming GEMV blocks up to 96 KB", few,
                             {"GRPST_CUDA_STREAM_MAX_SMEM_KB", "110", "96"}, *fwd, m.d.vocab,
                             report_decode, logits.p, s, f == cu::WeightFormat::fp8 ? 0.5 : 0.1);
      }
      if (f != cu::WeightFormat::int4_awq) {
        // The K split across two blocks of a cluster (the default for down_proj where one block's
        // shared memory does not hold the rows' activations, from 4 rows of bf16 / int8_wo, and
        // for fp8 / int8_sq from rows x K = 20,480: down_proj from 2 rows, qkv and o_proj from 5),
        // or not (the kernel the forward takes otherwise: cuBLASLt, the skinny kernel, or the
        // streaming GEMV whole; fp8 takes cuBLASLt at 8 rows either way). The step logits: int8_sq's
        // integer partial sums give the same bits; the others differ in rounding, which 36 layers
        // of random weights amplify (fp8 the most: an activation one ulp off can change its code).
        std::vector<std::pair<int, int>> rows = {{4, b1_ctx}, {6, b1_ctx}, {8, b1_ctx}};
        if (f == cu::WeightFormat::fp8) rows = {{2, b1_ctx}, {4, b1_ctx}, {6, b1_ctx}};
        if (f == cu::WeightFormat::int8_sq) rows.insert(rows.begin(), {2, b1_ctx});
        const double tol = f == cu::WeightFormat::int8_sq ? 0 : f == cu::WeightFormat::fp8 ? 0.5 : 0.1;
        compare_env_in_turns(label, "no K split", "K split across a cluster", rows,
                             {"GRPST_CUDA_STREAM_KSPLIT", "1", "0"}, *fwd, m.d.vocab,
                             report_decode, logits.p, s, tol);
        if (f == cu::WeightFormat::fp8 || f == cu::WeightFormat::int8_sq) {
          // one row: the exact one-token kernel whole (the default) or qkv, o_proj and down_proj split
          // (GRPST_CUDA_STREAM_KSPLIT_ONE_ROW=1; measured slower)
          compare_env_in_turns(label, "one row whole", "one row K split", {{1, b1_ctx}},
                               {"GRPST_CUDA_STREAM_KSPLIT_ONE_ROW", "0", "1"}, *fwd,
                               m.d.vocab, report_decode, logits.p, s, tol);
        }
      }
      if (f == cu::WeightFormat::int4_awq) {
        // down_proj where the streaming GEMV's shared memory does not hold its rows (from 5): the
        // skinny kernel or the tiled one (the default; the same products in another order)
        compare_in_turns(label, "skinny kernel where the streaming GEMV does not fit", "tiled kernel there",
                         {{5, b1_ctx}, {6, b1_ctx}, {8, b1_ctx}},
                         [&](bool on) { fwd->set_int4_tiled_fallback_min_rows(on ? 2 : 9); }, *fwd, m.d.vocab, report_decode,
                         logits.p, s, 0.1);
        fwd->set_int4_tiled_fallback_min_rows(cu::kDefaultInt4TiledFallbackMinRows);
      }
      if (f == cu::WeightFormat::int4_awq || f == cu::WeightFormat::int8_wo) {
        // The tiled kernel's block shapes at 33-64 rows: the rule for up to 32 rows, or whole waves
        // (the default; the same products summed over other K slices). int8_wo takes the tiled
        // kernel at these rows only here (cuBLASLt on a dequantized weight by default).
        fwd->set_wo_tiled_max_rows(cu::kDefaultWoTiledMaxRows, 64);
        compare_env_in_turns(label, "tiled shapes as up to 32 rows", "tiled shapes filling whole waves",
                             {{40, serve_ctx}, {serve_b, serve_ctx}}, {"GRPST_CUDA_WO_TILED_WAVES", "0", "1"}, *fwd, m.d.vocab,
                             report_decode, logits.p, s, 0.1);
        fwd->set_wo_tiled_max_rows(cu::kDefaultWoTiledMaxRows, cu::kDefaultWoTiledInt8MaxRows);
      }
      // where 2-8 rows leave the streaming GEMV for cuBLASLt (the crossovers in cuda_forward.h)
      crossover_in_turns({{2, b1_ctx}, {4, b1_ctx}, {5, b1_ctx}, {8, b1_ctx}});
      if (f == cu::WeightFormat::fp8 || f == cu::WeightFormat::int8_sq) {
        compare_env_in_turns(label, "activations staged with __fdiv_rn", "activations staged with div_by", streamed,
                             {"GRPST_CUDA_STREAM_FDIV", "1", "0"}, *fwd, m.d.vocab,
                             report_decode, logits.p, s);
      }
    }
    if (is_bf16) {  // one sequence's attention splits merged in a cluster (the default) or by the last block, in turns
      for (int ctx : {512, 1024, 2048}) {
        cu::StepInput inc = decode_step(bufs, 1, ctx, m.d.vocab);
        for (int turn = 0; turn < 2; ++turn)
          for (const char* on : {"0", "1"}) {
            setenv("GRPST_CUDA_MMA_CLUSTER_MERGE", on, 1);
            report_decode("b1 ctx" + std::to_string(ctx) + " graph+pdl splits merged " +
                              (on[0] == '1' ? "in a cluster" : "by the last block") + (turn ? " (again)" : ""),
                          1, ctx, decode_ms(*fwd, inc, logits.p, true, true, s));
          }
      }
      unsetenv("GRPST_CUDA_MMA_CLUSTER_MERGE");
      // Longer contexts: the GPU-filling split count (16 at 4k / 8k keys) in clusters of 16 (the
      // default) or merged by the last block (clusters of at most 8), or at most 8 splits in a cluster.
      for (int ctx : {4096, 8192}) {
        cu::StepInput inc = decode_step(bufs, 1, ctx, m.d.vocab);
        const std::string at = "b1 ctx" + std::to_string(ctx) + " graph+pdl ";
        for (int turn = 0; turn < 2; ++turn) {
          const std::string again = turn ? " (again)" : "";
          report_decode(at + "splits as the default" + again, 1, ctx, decode_ms(*fwd, inc, logits.p, true, true, s));
          setenv("GRPST_CUDA_MMA_CLUSTER_MAX", "8", 1);
          report_decode(at + "splits merged in clusters of up to 8, by the last block beyond" + again, 1, ctx,
                        decode_ms(*fwd, inc, logits.p, true, true, s));
          unsetenv("GRPST_CUDA_MMA_CLUSTER_MAX");
          fwd->set_mma_split_cap(8, 1 << 30);
          report_decode(at + "at most 8 splits, merged in a cluster" + again, 1, ctx, decode_ms(*fwd, inc, logits.p, true, true, s));
          fwd->set_mma_split_cap(cu::kMmaMinSplits, cu::env_int("GRPST_CUDA_MMA_SPLIT_KEYS", cu::kDefaultMmaSplitKeys));
        }
      }
    }
    if (is_bf16 && new_decode_kernels()) sweep_persistent(*fwd, m.d.vocab, report_decode, logits.p, s);
    if (f == cu::WeightFormat::fp8 && new_decode_kernels()) {
      // An fp8 KV cache under a quantized model (the streaming path: the staged decode attention):
      // its splits merged in a thread-block cluster or by the last block, then at most 16 splits
      // at every context against the GPU-filling count (33 at one sequence), in turns; then the
      // runtime's own cache again.
      cu::KvCache kv8;
      if (Checks::get().expect("model fp8 KV cache", make_kv(m, 1024, cu::KvDtype::fp8, 700, &kv8)) &&
          Checks::get().status("Forward::set_kv fp8", fwd->set_kv(kv8))) {
        compare_env_in_turns(label + " fp8 KV", "fp8 KV cache, splits merged by the last block",
                             "fp8 KV cache, splits merged in a cluster", {{1, 512}, {1, 2048}, {4, 2048}},
                             {"GRPST_CUDA_STAGED_CLUSTER_MERGE", "0", "1"}, *fwd,
                             m.d.vocab, report_decode, logits.p, s);
        compare_in_turns(label + " fp8 KV", "fp8 KV cache, splits filling the GPU", "fp8 KV cache, at most 16 splits",
                         {{1, 2048}, {1, 4096}, {1, 8192}, {2, 2048}},
                         [&](bool on) { fwd->set_staged_split_cap(on ? cu::kDefaultStagedMaxSplits : 0, 1 << 30); }, *fwd,
                         m.d.vocab, report_decode, logits.p, s, 0.1);
        fwd->set_staged_split_cap(cu::kDefaultStagedMaxSplits, cu::kStagedCapMaxContext);
      }
      Checks::get().status("Forward::set_kv again", fwd->set_kv(m.kv));
    }
    if (new_decode_kernels()) sweep_row_stats(*fwd, m.d.vocab, !is_bf16, report_decode, logits.p, s);
    previous(true);
    report_decode("b1 ctx512 graph+pdl previous kernels", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
    previous(false);
    if ((f == cu::WeightFormat::int4_awq || f == cu::WeightFormat::fp8) && new_decode_kernels()) {
      // The streaming GEMV's variants against each other: register buffers (three blocks per SM
      // for wide matrices, or two everywhere) and the cp.async ring.
      const char* variants[][3] = {{"register kernel", "", "0"}, {"register kernel 2 blocks/SM everywhere", "2", "0"},
                                   {"cp.async ring", "", "1"}};
      for (const auto& v : variants) {
        if (v[1][0]) setenv("GRPST_CUDA_STREAM_OCCUPANCY", v[1], 1);
        setenv("GRPST_CUDA_STREAM_RING", v[2], 1);
        report_decode(std::string("b1 ctx512 graph+pdl ") + v[0], 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
        unsetenv("GRPST_CUDA_STREAM_OCCUPANCY");
        unsetenv("GRPST_CUDA_STREAM_RING");
      }
    }
    if (!is_bf16 && new_decode_kernels()) {  // the general streaming GEMV instead of the exact one, at 1 and 8 rows
      setenv("GRPST_CUDA_STREAM_EXACT", "0", 1);
      report_decode("b1 ctx512 graph+pdl general streaming GEMV", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
      unsetenv("GRPST_CUDA_STREAM_EXACT");
      cu::StepInput in8 = decode_step(bufs, 8, b1_ctx, m.d.vocab);
      report_decode("b8 ctx512 graph+pdl", 8, b1_ctx, decode_ms(*fwd, in8, logits.p, true, true, s));
      setenv("GRPST_CUDA_STREAM_EXACT", "0", 1);
      report_decode("b8 ctx512 graph+pdl general streaming GEMV", 8, b1_ctx, decode_ms(*fwd, in8, logits.p, true, true, s));
      unsetenv("GRPST_CUDA_STREAM_EXACT");
    }
    if (is_bf16 && new_decode_kernels()) {  // bf16 weights through the streaming GEMV as well
      // at every batch (b1 is the same kernels as the default), and the bf16 GEMV at one row
      fwd->set_stream_bf16(true);
      report_decode("b1 ctx512 graph+pdl stream bf16", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
      fwd->set_stream_bf16(false);
      // the bf16 GEMV at one row, and its own choices against their alternatives
      fwd->set_bf16_stream_max_rows(0);
      report_decode("b1 ctx512 graph+pdl bf16 GEMV", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
      fwd->set_narrow_lt(true);
      report_decode("b1 ctx512 graph+pdl bf16 GEMV, down_proj via cuBLASLt", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
      fwd->set_narrow_lt(false);
      setenv("GRPST_CUDA_GEMV_DIRECT_X", "0", 1);  // o_proj and down_proj stage x in shared memory
      report_decode("b1 ctx512 graph+pdl bf16 GEMV, x staged in shared memory", 1, b1_ctx,
                    decode_ms(*fwd, in1, logits.p, true, true, s));
      unsetenv("GRPST_CUDA_GEMV_DIRECT_X");
      fwd->set_bf16_stream_max_rows(cu::kDefaultBf16StreamMaxRows);
    }
    if (is_bf16) {
      setenv("GRPST_CUDA_MMA_PREFETCH", "0", 1);  // decode attention loads every key after the wait
      report_decode("b1 ctx512 graph+pdl attention without early K/V loads", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
      unsetenv("GRPST_CUDA_MMA_PREFETCH");
      report_decode("b1 ctx512 graph", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, false, s));
      report_decode("b1 ctx512 eager", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, false, false, s));
      for (int B : {2, 4, 8, 16}) {
        cu::StepInput inb = decode_step(bufs, B, b1_ctx, m.d.vocab);
        report_decode("b" + std::to_string(B) + " ctx512 graph+pdl", B, b1_ctx, decode_ms(*fwd, inb, logits.p, true, true, s));
      }
      sweep_bf16_decode(*fwd, m.d.vocab, report_decode, logits.p, s);
    }
    cu::StepInput in64 = decode_step(bufs64, serve_b, serve_ctx, m.d.vocab);
    report_decode("b64 ctx1536 graph+pdl", serve_b, serve_ctx, decode_ms(*fwd, in64, logits.p, true, true, s));
    if (!is_bf16 && !quant_head && new_decode_kernels())
      sweep_quantized_decode(*fwd, f, m.d.vocab, serve_ctx, report_decode, logits.p, s);
    if (is_bf16) {  // bf16 caches: the tensor-core decode attention against the register-streaming one
      fwd->set_mma_decode(false);
      report_decode("b1 ctx512 graph+pdl register-streaming attention", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
      report_decode("b64 ctx1536 graph+pdl register-streaming attention", serve_b, serve_ctx,
                    decode_ms(*fwd, in64, logits.p, true, true, s));
      cudaStreamSynchronize(s);
      const std::vector<float> before = logits.download();
      fwd->set_mma_decode(true);
      report_decode("b1 ctx512 graph+pdl mma attention", 1, b1_ctx, decode_ms(*fwd, in1, logits.p, true, true, s));
      report_decode("b64 ctx1536 graph+pdl mma attention", serve_b, serve_ctx, decode_ms(*fwd, in64, logits.p, true, true, s));
      cudaStreamSynchronize(s);
      const std::vector<float> after = logits.download();
      // The same step's logits on both kernels (same weights, cache and positions): end to end
      // through the runtime's selection at the 8B shape, which the tiny fixtures (head_dim 24/32) miss.
      double num = 0, den = 0, worst = 0;
      size_t nonfinite = 0;
      for (size_t i = 0; i < after.size() && i < before.size(); ++i) {
        if (!std::isfinite(after[i])) ++nonfinite;
        const double d = double(after[i]) - before[i];
        num += d * d;
        den += double(before[i]) * before[i];
        worst = std::max(worst, std::fabs(d));
      }
      char note[160];
      std::snprintf(note, sizeof note, "b64 ctx1536 step logits: max abs diff %.4f, %zu non-finite", worst, nonfinite);
      Bench::get().add("decode", label + " logits rel_l2 mma vs register-streaming attention",
                       den > 0 ? std::sqrt(num / den) : -1, "rel_l2", note);
      const char* mma = std::getenv("GRPST_CUDA_MMA_DECODE");
      fwd->set_mma_decode(!(mma && mma[0] == '0'));
    }
    if (is_bf16) {
      previous(true);
      report_decode("b64 ctx1536 graph+pdl previous kernels", serve_b, serve_ctx, decode_ms(*fwd, in64, logits.p, true, true, s));
      previous(false);
    }

    if (is_bf16) {
      for (int T : prompts) {
        const int chunk = std::min(T, lim.max_tokens);
        const cu::Exec ex{s, false};
        std::vector<cu::StepInput> steps;
        std::vector<std::unique_ptr<StepBuffers>> sb;
        for (int start = 0; start < T; start += chunk) {
          sb.emplace_back(new StepBuffers());
          steps.push_back(prefill_step(*sb.back(), start, std::min(chunk, T - start), T, m.d.vocab));
        }
        const double ms = time_ms([&] {
          for (auto& st : steps)
            if (!Checks::get().status("prefill", fwd->run(st, logits.p, ex))) return false;
          return true;
        }, 1, 3, s);
        if (ms <= 0) continue;
        double linear_flops = 0;
        for (const auto& lw : m.w.layers)
          for (const cu::Weight* w : {&lw.qkv, &lw.o, &lw.gate_up, &lw.down}) linear_flops += 2.0 * w->N * w->K;
        const double flops = linear_flops * T + 4.0 * m.d.layers * m.d.heads * m.d.head_dim * (double(T) * (T + 1) / 2) +
                             2.0 * m.d.vocab * m.d.hidden;
        char note[200];
        std::snprintf(note, sizeof note, "TTFT %.1f ms, %.0f TFLOP/s achieved, chunk %d", ms, flops / (ms * 1e-3) / 1e12, chunk);
        Bench::get().add("prefill", label + " prompt " + std::to_string(T), T / (ms * 1e-3), "tok/s", note);
      }
    }
    fwd.reset();
  }
  cu::lt_destroy(lt);
  cudaStreamDestroy(s);
}

}  // namespace harness
