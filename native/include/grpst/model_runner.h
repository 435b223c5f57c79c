// The model forward pass behind a device-neutral interface. The scheduler builds a StepBatch
// (a flat list of tokens from several sequences, decode tokens and prefill chunks mixed) and a
// runner (CPU today, CUDA later) turns it into logits for the rows that need them. Runners own
// their KV storage; which block holds which tokens is decided outside (BlockManager).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grpst/common.h"
#include "grpst/device_sample_rules.h"
#include "grpst/forward_observer.h"
#include "grpst/model_config.h"
#include "grpst/tensor_parallel.h"

namespace grpst {

struct LoraAdapter;  // grpst/lora.h

/** KV cache element types: float ones, and the 1-byte quantized ones (src/quant/LAYOUTS.md, "KV cache"). */
enum class KvDType : uint8_t { BF16, F32, FP8, INT8 };
/** "bfloat16", "float32", "fp8", "int8" (engine.json's spellings). */
const char* kv_dtype_name(KvDType d);
/** "auto"/"bfloat16"/"bf16" -> BF16, "float32"/"fp32" -> F32, "fp8" -> FP8 (e4m3), "int8"; others throw Error. */
KvDType parse_kv_dtype(const std::string& name);
size_t kv_dtype_size(KvDType d);
inline bool kv_dtype_quantized(KvDType d) { return d == KvDType::FP8 || d == KvDType::INT8; }
/** Bytes of KV cache one token takes across all layers (keys and values). */
size_t kv_cache_bytes_per_token(const ModelConfig& cfg, KvDType d);

struct KvCacheSpec {
  int num_blocks = 0;
  int block_size = 16;
  KvDType dtype = KvDType::BF16;
  // fp8 / int8: one scale per layer for keys and one for values (TensorRT-LLM's per-tensor KV
  // scales): the cache stores quantize(x / scale) and attention reads value * scale. Empty for
  // float caches.
  std::vector<float> k_scales, v_scales;
};

/**
 * The per-layer scales of a quantized cache from `scales` ([layer][k, v] flattened, as engine.json
 * records them): checked (one pair per layer, finite and positive) and written into spec. An fp8
 * cache without scales gets 1.0 everywhere (TensorRT-LLM's default without calibration); an int8
 * cache without scales throws Error (rounding to integers without a scale would destroy the cache).
 * Float caches ignore `scales`.
 */
void set_kv_scales(KvCacheSpec& spec, const std::vector<float>& scales, int num_layers);

/** One sequence's part of a step. */
struct SeqSlice {
  int first_row = 0;        // index of its first token in StepBatch::tokens
  int num_tokens = 0;       // its tokens in this step (1 when decoding, a chunk when prefilling)
  int start_pos = 0;        // position of its first token; positions run start_pos .. +num_tokens
  const int32_t* block_table = nullptr;  // KV blocks covering positions [0, start_pos + num_tokens)
  int num_blocks = 0;
  const LoraAdapter* lora = nullptr;     // the sequence's adapter (runners with supports_lora()), or none
};

/**
 * A logits row the runner samples itself, on its device (runners whose samples_on_device() is
 * true). The draw follows the host sampler's steps (bans, logit bias, the grammar's mask,
 * penalties, temperature, top_k, top_p, min_p) with a counter-based generator seeded by (seed,
 * step): reproducible for a seed on one device, not the CPU sampler's stream.
 */
struct DeviceSample {
  int logit_row = 0;  // index into StepBatch::logit_rows
  float temperature = 1.0f;
  float top_p = 1.0f;
  float min_p = 0.0f;
  int top_k = 0;
  uint64_t seed = 0;
  uint64_t step = 0;  // tokens the sequence generated before this one
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // The row's history for its penalties (empty without them), ranges in StepBatch's lists.
  int prompt_begin = 0, prompt_count = 0;  // penalty_prompt_tokens: distinct prompt tokens (repetition penalty only)
  int output_begin = 0, output_count = 0;  // penalty_output_counts: (token, count) pairs of the output so far
  int top_n = 0;  // top logprobs wanted (at most DeviceDrawResults::kMaxTop)
  // Before the penalties: bans and biases (StepBatch::logit_edits, sorted by token) and, for a
  // constrained row, the grammar's allowed tokens (StepBatch::masks, index `mask`, -1: none).
  int edit_begin = 0, edit_count = 0;
  int mask = -1;
};

/**
 * A prompt logprob row the runner reads itself (runners whose samples_on_device() is true): the
 * logprob and rank of the prompt token it predicts, and its best entries, as Sampler::logprobs
 * and Sampler::rank_of give them.
 */
struct DevicePromptRow {
  int logit_row = 0;   // index into StepBatch::logit_rows
  int32_t target = 0;  // the prompt token the row predicts
  int top_n = 0;       // best entries wanted (at most DeviceDrawResults::kMaxTop)
};

/** A runner's draws for StepBatch::device_samples, entry i for sample i (forward_sampled()). */
struct DeviceDrawResults {
  static constexpr int kMaxTop = 20;
  std::vector<int32_t> tokens;      // -1: every token was banned or masked out
  std::vector<float> logprobs;      // log-softmax of the raw logits at the token
  std::vector<int32_t> top_tokens;  // [i * kMaxTop + k]: sample i's k-th best, its first top_n written
  std::vector<float> top_logprobs;
  // StepBatch::device_prompt_rows, entry i for row i: the target's logprob and rank (1: the
  // likeliest), and its best entries [i * kMaxTop + k], the first top_n written.
  std::vector<float> prompt_logprobs;
  std::vector<int32_t> prompt_ranks;
  std::vector<int32_t> prompt_top_tokens;
  std::vector<float> prompt_top_logprobs;
};

struct StepBatch {
  std::vector<int32_t> tokens;      // [T]
  std::vector<SeqSlice> seqs;
  std::vector<int32_t> logit_rows;  // rows of `tokens` whose next-token logits are wanted, in output order
  std::vector<DeviceSample> device_samples;  // empty unless the runner samples on its device
  std::vector<int32_t> penalty_prompt_tokens;   // device rows' distinct prompt tokens
  std::vector<int32_t> penalty_output_counts;   // device rows' output histories: token, count, token, count, ...
  std::vector<LogitEdit> logit_edits;           // device rows' bans (-inf) and logit biases, each row's by token
  std::vector<uint32_t> masks;                  // constrained device rows' allowed tokens, ceil(vocab / 32) words each
  std::vector<DevicePromptRow> device_prompt_rows;  // prompt logprob rows read on the device (their logits stay there)
  std::vector<int32_t> hidden_rows;  // indices into logit_rows whose final-norm output is wanted (embedding requests)
  int num_tokens() const { return int(tokens.size()); }
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual const ModelConfig& config() const = 0;
  /** "cpu" or "cuda". */
  virtual std::string device() const = 0;
  /** The kernels in use (e.g. "avx512"), for EngineInfo. */
  virtual std::string kernels() const = 0;
  virtual int threads() const = 0;
  /** Bytes of KV cache one token takes across all layers. */
  virtual size_t kv_bytes_per_token(KvDType dtype) const = 0;
  /** Allocates the KV pool; called once before the first forward. */
  virtual void allocate_kv(const KvCacheSpec& spec) = 0;
  /**
   * Runs the model on `batch` (at most max_tokens tokens and max_logit_rows logit rows), writes
   * K/V of every token into its block, and fills logits [batch.logit_rows.size(), vocab]. With
   * `logits` null nothing is returned: a tensor-parallel follower runs its share of the step, the
   * collectives included, and leaves the logits to rank 0 (copying 64 rows of a 152k vocabulary
   * to the host would cost it 39 MB per step).
   */
  virtual void forward(const StepBatch& batch, float* logits) = 0;
  /** Weight bytes a decode step reads (the memory roofline's numerator). */
  virtual int64_t weight_bytes_per_step() const = 0;
  /**
   * Whether forward() applies SeqSlice::lora (the CPU runner of a whole model does; the CUDA and
   * tensor-parallel runners do not, and the engine refuses adapters' requests there).
   */
  virtual bool supports_lora() const { return false; }
  /** Whether forward_sampled() draws StepBatch::device_samples itself (logits stay on the device). */
  virtual bool samples_on_device() const { return false; }
  /**
   * forward() plus the draws of batch.device_samples and the reads of batch.device_prompt_rows
   * into `draws`. Returns where the step's logit rows are: `logits`, or a buffer of the runner's
   * own (valid until its next step) that it filled instead of copying rows on into `logits`. The
   * rows of device draws and device prompt rows may be left unwritten; every other logit row is
   * filled as forward() fills it. `before_draws` runs once the forward pass is under way and
   * before the draws read the batch: it may complete batch.masks (the grammar masks, computed on
   * the host while the device runs the model).
   */
  virtual const float* forward_sampled(const StepBatch& batch, float* logits, DeviceDrawResults& draws,
                                       const std::function<void()>& before_draws) {
    forward(batch, logits);
    if (before_draws) before_draws();
    return logits;
  }
  /**
   * Right after forward(): the final RMSNorm's output (the LM head's input) at logit rows
   * `rows` (indices into that step's logit_rows) into out [rows.size(), hidden_size], as float.
   */
  virtual void final_hidden(const std::vector<int32_t>& rows, float* out) {
    throw Error("this runtime's " + device() + " runner does not return hidden states; embeddings need another engine");
  }
  /**
   * A runner that reduces calibration statistics itself (the GPU's) hands the totals of the steps
   * since the last call to its observer here; the CPU runner hands over rows as it goes.
   */
  virtual void flush_observer() {}
};

struct CpuRunnerOptions {
  int threads = 1;
  int max_tokens = 512;       // tokens per step (activation buffers are sized for it)
  int max_logit_rows = 256;
  int max_seq_len = 4096;     // longest context (attention scratch)
  std::string kernel_level;   // "" = best; "avx512", "avx2", "scalar"
  std::string quantization;   // engine quantization scheme; "none" for checkpoints
  ForwardObserver* observer = nullptr;  // calibration: sees each linear group's input (not owned)
  TensorParallel tp;                    // a rank's shard of a tensor-parallel engine (off by default)
  const int32_t* cancel = nullptr;      // set non-zero from JS to stop a load between layers (not owned)
};

/** The message a cancelled load fails with (the JS side knows a cancel by its own flag). */
inline constexpr const char* kLoadCancelled = "loading was cancelled";

/** Throws when `flag` (an Int32Array cell JS writes with Atomics.store) is set; null never cancels. */
inline void throw_if_load_cancelled(const int32_t* flag) {
  if (flag != nullptr && __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 0) throw Error(kLoadCancelled);
}

/**
 * Test hook: the environment variable `env` (GRPST_TEST_LOAD_LAYER_DELAY_MS for the CPU mapping,
 * GRPST_TEST_UPLOAD_LAYER_DELAY_MS for the CUDA upload) makes each layer of that phase take so many
 * milliseconds (watching `flag`), so tests can stop a load in the phase they mean; unset, it costs
 * one getenv per layer. Read at every call, so a test can set it for one load only.
 */
void test_load_layer_delay(const int32_t* flag, const char* env = "GRPST_TEST_LOAD_LAYER_DELAY_MS");

class TensorStore;
/**
 * Builds the CPU runner for a Qwen3 model whose tensors are in `store` (kept alive by the runner).
 * With opts.tp on, `store` holds that rank's shard and `cfg` is still the whole model.
 */
std::unique_ptr<ModelRunner> make_cpu_runner(const ModelConfig& cfg, std::shared_ptr<TensorStore> store,
                                             const CpuRunnerOptions& opts);

}  // namespace grpst
