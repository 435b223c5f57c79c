#include "runtime/cuda_runner.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "grpst/tensor_store.h"
#include "kernels/cuda/env_switch.h"
#include "model/qwen3_weights.h"
#include "runtime/cuda_calibration.h"
#include "runtime/cuda_device_draws.h"
#include "runtime/cuda_forward.h"
#include "runtime/cuda_lora.h"
#include "runtime/cuda_tp.h"
#include "runtime/cuda_weights.h"

namespace grpst {

namespace cu = grpst::cuda;

namespace {

void check(const cu::Status& s) {
  if (!s.ok()) throw Error("CUDA backend: " + s.message());
}
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA backend: ") + what + ": " + cudaGetErrorString(e));
}

// Graph buckets: decode batches are padded up to one of these sizes.
int batch_bucket(int n) {
  static const int kBuckets[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256};
  for (int b : kBuckets)
    if (n <= b) return b;
  return -1;
}
int context_bucket(int ctx, int max_seq_len) {
  int c = 512;
  while (c < ctx) c *= 2;
  return std::min(c, std::max(512, max_seq_len));
}

// Step metadata, laid out identically in pinned host memory and in device memory.
struct StepArrays {
  int32_t* tokens;
  int32_t* positions;
  int32_t* slots;
  int32_t* token_seq;
  int32_t* logit_rows;
  int32_t* q_start;
  int32_t* q_len;
  int32_t* ctx_len;
  int32_t* seq_index;
  int32_t* tables;  // [max_seqs, table_width]
};

class CudaRunner final : public ModelRunner {
 public:
  // `store` is only read during construction (the upload): no reference to it is kept.
  CudaRunner(const ModelConfig& cfg, TensorStore& store, const CudaRunnerOptions& o)
      : full_(cfg), cfg_(o.tp.on() ? shard_config(cfg, o.tp.shard) : cfg), opts_(o) {
    // A load that fails part way (out of memory, cancelled) frees what it took: no destructor runs.
    try {
      init(cfg, store, o);
    } catch (...) {
      release();
      throw;
    }
  }

  ~CudaRunner() override { release(); }

 private:
  void init(const ModelConfig& cfg, TensorStore& store, const CudaRunnerOptions& o) {
    check(cudaSetDevice(o.device), "cudaSetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, o.device), "cudaGetDeviceProperties");
    if (prop.major < 8)
      throw Error(std::string("CUDA backend: ") + prop.name + " (compute capability " + std::to_string(prop.major) + "." +
                  std::to_string(prop.minor) + ") is too old; the kernels need sm_80 or newer (built for sm_90a)");
    num_sms_ = prop.multiProcessorCount;
    kernels_ = std::string(prop.name) + " (sm_" + std::to_string(prop.major * 10 + prop.minor) + ", cuda)";
    if (cu::env_int("GRPST_CUDA_GRAPHS", 1) == 0) opts_.cuda_graphs = false;
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cu::lt_create(&lt_, size_t(64) << 20));

    const WeightFormat fmt = weight_format_for_scheme(o.quantization.empty() ? "none" : o.quantization);
    {
      // Views into the store, gone with this scope: from here on the runner reads device memory
      // alone, and its caller releases the host copy (make_runner_for_device).
      Qwen3Weights hw = load_qwen3_weights(store, cfg_, fmt, o.cancel);
      weights_ = upload_qwen3(cfg_, hw, mem_, &weight_bytes_, o.cancel);
    }

    cu::ModelDims d;
    d.hidden = cfg_.hidden_size;
    d.intermediate = cfg_.intermediate_size;
    d.layers = cfg_.num_layers;
    d.heads = cfg_.num_heads;
    d.kv_heads = cfg_.num_kv_heads;
    d.head_dim = cfg_.head_dim;
    d.vocab = cfg_.vocab_size;
    d.eps = cfg_.rms_norm_eps;
    if (cfg_.moe.on()) {
      d.moe.experts = cfg_.moe.num_experts;
      d.moe.top_k = cfg_.moe.experts_per_tok;
      d.moe.intermediate = cfg_.moe.intermediate_size;
      d.moe.norm_topk = cfg_.moe.norm_topk_prob;
    }
    cu::ForwardLimits lim;
    max_tokens_ = std::max(o.max_tokens, batch_bucket_limit());
    lim.max_tokens = max_tokens_;
    lim.max_logits = std::max(o.max_logit_rows, batch_bucket_limit());
    std::unique_ptr<cu::Forward> f;
    check(cu::Forward::create(d, weights_, lim, lt_, num_sms_, &f));
    forward_ = std::move(f);
    if (o.tp.on()) {
      tp_hooks_ = cu::make_tensor_parallel_hooks(o.tp.comm, o.tp.shard, cfg.vocab_size, max_tokens_, lim.max_logits);
      forward_->set_tensor_parallel(tp_hooks_.get());
    }

    // Step metadata: fixed addresses, so graphs captured once stay valid. A graph's padding rows
    // take a table row each, up to the bucket above the largest batch (12 for a batch of 10).
    max_seqs_ = std::max(o.max_batch_size, batch_bucket(batch_bucket_limit()));
    table_width_ = (o.max_seq_len + o.kv_block_size - 1) / o.kv_block_size + 1;
    const size_t T = max_tokens_, L = lim.max_logits, S = max_seqs_;
    meta_ints_ = 4 * T + L + 4 * S + S * size_t(table_width_);
    check(cudaMallocHost(&host_meta_, meta_ints_ * 4), "cudaMallocHost");
    dev_meta_ = static_cast<int32_t*>(mem_.get(meta_ints_ * 4, "step metadata"));
    host_ = arrays(host_meta_);
    dev_ = arrays(dev_meta_);
    logits_dev_ = static_cast<float*>(mem_.get(L * size_t(cfg.vocab_size) * 4, "logits"));
    check(cudaMallocHost(&logits_host_, L * size_t(cfg.vocab_size) * 4), "cudaMallocHost logits");
    max_logits_ = int(L);
    draws_.init(max_logits_, cfg.vocab_size, mem_);
    // Embedding requests: final-norm rows, bf16 on the device, copied back through pinned memory.
    hidden_dev_ = static_cast<cu::bf16*>(mem_.get(L * size_t(cfg.hidden_size) * 2, "hidden rows"));
    check(cudaMallocHost(&hidden_host_, L * size_t(cfg.hidden_size) * 2), "cudaMallocHost");
  }

  /** Everything init() and later steps allocated outside mem_ (which frees itself); safe on a partial init. */
  void release() {
    if (stream_) cudaStreamSynchronize(stream_);
    for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g);
    graphs_.clear();
    lora_.reset();
    forward_.reset();
    taps_.reset();
    tp_hooks_.reset();
    if (kv_) cudaFree(kv_);
    if (host_meta_) cudaFreeHost(host_meta_);
    if (logits_host_) cudaFreeHost(logits_host_);
    draws_.release();
    if (hidden_host_) cudaFreeHost(hidden_host_);
    hidden_host_ = nullptr;
    kv_ = nullptr;
    host_meta_ = nullptr;
    logits_host_ = nullptr;
    if (lt_) cu::lt_destroy(lt_);
    lt_ = nullptr;
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

 public:
  const ModelConfig& config() const override { return full_; }
  std::string device() const override { return "cuda"; }
  std::string kernels() const override { return kernels_; }
  int threads() const override { return 1; }
  int64_t weight_bytes_per_step() const override { return weight_bytes_; }
  bool samples_on_device() const override { return true; }
  // Adapters run on one GPU (a tensor-parallel rank would need them sharded like its weights), and
  // not on a Qwen3-MoE model, whose MLPs are experts that adapters of gate/up/down do not describe.
  bool supports_lora() const override { return !opts_.tp.on() && !cfg_.moe.on(); }

  void forward(const StepBatch& batch, float* logits) override { step(batch, logits, nullptr, true, {}); }
  // The host reads the rows where they landed (pinned memory): copying 64 rows of a 152k
  // vocabulary on into `logits` took one thread about as long as the step itself.
  const float* forward_sampled(const StepBatch& batch, float* logits, DeviceDrawResults& draws,
                               const std::function<void()>& before_draws) override {
    step(batch, logits, &draws, false, before_draws);
    return logits ? logits_host_ : nullptr;
  }

  // The head's input rows of the last step, normalized again outside the head's fused prologue
  // (the same kernel as the layers' norms), as float. host_.logit_rows still maps that step's
  // logit rows to its token rows, graphs included (their logit rows are the identity).
  void final_hidden(const std::vector<int32_t>& rows, float* out) override {
    const int n = int(rows.size());
    const size_t H = size_t(cfg_.hidden_size);
    if (n > max_logits_) throw Error("final_hidden: more rows than a step has logit rows");
    std::vector<int32_t> token_rows(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      if (rows[size_t(i)] < 0 || rows[size_t(i)] >= last_logit_rows_) throw Error("final_hidden: row " + std::to_string(rows[size_t(i)]) + " is not a logit row of the last step");
      token_rows[size_t(i)] = host_.logit_rows[rows[size_t(i)]];
    }
    check(forward_->final_norm_rows(token_rows.data(), n, hidden_dev_, cu::Exec{stream_, false}));
    check(cudaMemcpyAsync(hidden_host_, hidden_dev_, size_t(n) * H * 2, cudaMemcpyDeviceToHost, stream_), "copy hidden rows");
    check(cudaStreamSynchronize(stream_), "hidden rows");
    for (size_t i = 0; i < size_t(n) * H; ++i) {
      const uint32_t bits = uint32_t(hidden_host_[i]) << 16;
      std::memcpy(out + i, &bits, 4);
    }
  }

  void flush_observer() override {
    if (taps_ && opts_.observer) taps_->flush(*opts_.observer, stream_);
  }

  size_t kv_bytes_per_token(KvDType dtype) const override {
    // bf16 (float32 caches are refused below), or 1 byte for fp8 / int8
    return size_t(cfg_.num_layers) * 2 * cfg_.kv_dim() * (kv_dtype_quantized(dtype) ? 1 : 2);
  }

  void allocate_kv(const KvCacheSpec& spec) override {
    if (spec.dtype == KvDType::F32)
      throw Error("CUDA backend: KV cache dtype float32 is not supported on the GPU; use kvCacheDtype \"auto\", "
                  "\"bfloat16\", \"fp8\" or \"int8\"");
    if (spec.block_size != opts_.kv_block_size)
      throw Error("CUDA backend: KV block size changed after load");
    const bool quantized = kv_dtype_quantized(spec.dtype);
    if (quantized && (int(spec.k_scales.size()) != cfg_.num_layers || int(spec.v_scales.size()) != cfg_.num_layers))
      throw Error("CUDA backend: a quantized KV cache needs one k and one v scale per layer");
    const size_t per_layer =
        size_t(spec.num_blocks) * cfg_.num_kv_heads * spec.block_size * cfg_.head_dim * (quantized ? 1 : 2);
    check(cudaMalloc(&kv_, per_layer * 2 * cfg_.num_layers),
          "cudaMalloc KV cache (lower kvCacheFreeMemFraction or maxTokensInPagedKvCache)");
    cu::KvCache kv;
    const cu::KvDtype dt = spec.dtype == KvDType::FP8 ? cu::KvDtype::fp8
                           : spec.dtype == KvDType::INT8 ? cu::KvDtype::int8
                                                         : cu::KvDtype::bf16;
    kv.geo = cu::KvGeometry{spec.num_blocks, spec.block_size, cfg_.num_kv_heads, cfg_.head_dim, dt};
    for (int l = 0; l < cfg_.num_layers; ++l) {
      uint8_t* base = static_cast<uint8_t*>(kv_) + per_layer * 2 * l;
      // The engine's calibrated per-layer scales (engine.json kv_cache.scales), as the CPU runner uses them.
      const float ks = quantized ? spec.k_scales[l] : 1.f, vs = quantized ? spec.v_scales[l] : 1.f;
      kv.layers.push_back(cu::KvLayer{base, base + per_layer, ks, vs});
    }
    check(forward_->set_kv(kv));
    block_size_ = spec.block_size;
  }

 private:
  // One step: the forward pass, the device draws, and the logits rows the host still needs (in
  // logits_host_, and with copy_rows in `logits` too).
  void step(const StepBatch& batch, float* logits, DeviceDrawResults* draws, bool copy_rows,
            const std::function<void()>& before_draws) {
    const int T = batch.num_tokens();
    if (T == 0) return;
    if (T > max_tokens_) throw Error("CUDA backend: a step of " + std::to_string(T) + " tokens exceeds max_tokens");
    if (int(batch.seqs.size()) > max_seqs_) throw Error("CUDA backend: more sequences in a step than max_batch_size");
    // Decode rows (one token per sequence) first, then the prefill chunks.
    std::vector<int> order;  // sequences in execution order
    int R = 0;
    for (size_t s = 0; s < batch.seqs.size(); ++s)
      if (batch.seqs[s].num_tokens == 1) order.push_back(int(s)), ++R;
    for (size_t s = 0; s < batch.seqs.size(); ++s)
      if (batch.seqs[s].num_tokens != 1) order.push_back(int(s));
    std::vector<int> new_row(T, -1);
    lora_rows_.assign(size_t(T), nullptr);
    bool any_lora = false;
    int row = 0, max_ctx = 0, P = 0, max_q = 0;
    for (int si = 0; si < int(order.size()); ++si) {
      const SeqSlice& sl = batch.seqs[order[si]];
      const int ctx = sl.start_pos + sl.num_tokens;
      if (ctx > sl.num_blocks * block_size_) throw Error("CUDA backend: a sequence's block table is too short");
      if (sl.num_blocks > table_width_) throw Error("CUDA backend: a sequence is longer than max_seq_len");
      max_ctx = std::max(max_ctx, ctx);
      std::memcpy(host_.tables + size_t(si) * table_width_, sl.block_table, size_t(sl.num_blocks) * 4);
      if (si >= R) {
        host_.q_start[P] = row;
        host_.q_len[P] = sl.num_tokens;
        host_.ctx_len[P] = ctx;
        host_.seq_index[P] = si;
        max_q = std::max(max_q, sl.num_tokens);
        ++P;
      }
      if (sl.lora) {
        if (!supports_lora())
          throw Error(cfg_.moe.on() ? "CUDA backend: LoRA adapters are not served for Qwen3-MoE models"
                                    : "CUDA backend: LoRA adapters are not served with tensor parallelism");
        if (!(sl.lora->shape == LoraShape::of(cfg_))) throw Error("CUDA backend: a LoRA adapter made for another model's shape");
        any_lora = true;
      }
      for (int j = 0; j < sl.num_tokens; ++j, ++row) {
        const int pos = sl.start_pos + j;
        lora_rows_[size_t(row)] = sl.lora;
        new_row[sl.first_row + j] = row;
        host_.tokens[row] = batch.tokens[sl.first_row + j];
        host_.positions[row] = pos;
        host_.slots[row] = sl.block_table[pos / block_size_] * block_size_ + pos % block_size_;
        host_.token_seq[row] = si;
      }
    }
    const int L = int(batch.logit_rows.size());
    last_logit_rows_ = L;
    bool identity = L == T;
    for (int i = 0; i < L; ++i) {
      host_.logit_rows[i] = new_row[batch.logit_rows[i]];
      identity = identity && host_.logit_rows[i] == i;
    }

    const cu::Exec ex{stream_, true};
    const bool decode_only = R == T && P == 0;
    const bool observed = opts_.observer && opts_.observer->active();
    const int bucket = decode_only && identity && opts_.cuda_graphs && !observed ? batch_bucket(T) : -1;
    if (bucket > 0 && bucket <= max_tokens_) {
      // Padding rows write no KV (slot -1) and read block 0 at position 0.
      for (int r = T; r < bucket; ++r) {
        host_.tokens[r] = 0;
        host_.positions[r] = 0;
        host_.slots[r] = -1;
        host_.token_seq[r] = r;
        std::memset(host_.tables + size_t(r) * table_width_, 0, size_t(table_width_) * 4);
      }
      upload(bucket, 0, 0, bucket);
      if (any_lora) {
        lora_rows_.resize(size_t(bucket), nullptr);  // padding rows: the base model
        prepare_lora();
      }
      const int cb = context_bucket(max_ctx, opts_.max_seq_len);
      run_graph(bucket, cb, any_lora);
    } else {
      upload(T, L, P, int(order.size()));
      if (any_lora) prepare_lora();
      cu::StepInput in = step_input(T, R, P, max_q, L, identity, max_ctx, any_lora);
      if (observed) {
        if (opts_.tp.on()) throw Error("CUDA backend: calibration runs on a single-rank model");
        if (!taps_) taps_ = std::make_unique<CalibrationTaps>(cfg_, max_tokens_);
        std::vector<int> kept;
        for (int r : opts_.observer->sample_rows(T))
          if (r >= 0 && r < T) kept.push_back(new_row[size_t(r)]);
        taps_->set_sample_rows(std::move(kept));
        std::vector<int> expert_kept;  // in the observer's order, as the CPU runner hands an expert its rows
        if (cfg_.moe.on())
          for (int r : opts_.observer->expert_sample_rows(T))
            if (r >= 0 && r < T) expert_kept.push_back(new_row[size_t(r)]);
        taps_->set_expert_samples(cfg_.moe.on(), std::move(expert_kept));
        forward_->set_taps(taps_.get());
      }
      const cu::Status st = forward_->run(in, logits_dev_, ex);
      forward_->set_taps(nullptr);
      check(st);
    }
    // The host's share of the draws (grammar masks) while the GPU runs the step.
    if (draws && before_draws) before_draws();
    const int D = draws ? draws_.enqueue(batch, logits_dev_, stream_) : 0;
    const int prompt_rows = draws ? int(batch.device_prompt_rows.size()) : 0;
    // Only the rows the host reads come back (host draws, prompt logprobs over 20 entries), in
    // runs of consecutive rows: rows drawn or read on the device stay there, and a
    // tensor-parallel follower (no logits buffer) copies none. Copying every row whenever one
    // needed the host cost a 64-row step 2 x 39 MB (a 152k vocabulary) for a single request with
    // logprobs in the batch; a 256-row chunk of prompt logprobs, 155 MB.
    host_runs_.clear();
    if (logits && L > D + prompt_rows) {
      on_device_.assign(size_t(L), 0);
      for (int i = 0; i < D; ++i) on_device_[size_t(batch.device_samples[i].logit_row)] = 1;
      for (int i = 0; i < prompt_rows; ++i) on_device_[size_t(batch.device_prompt_rows[i].logit_row)] = 1;
      for (int i = 0; i < L;) {
        int j = i;
        while (j < L && !on_device_[size_t(j)]) ++j;
        if (j > i) host_runs_.emplace_back(i, j);
        i = j + 1;
      }
    }
    const size_t V = size_t(full_.vocab_size);
    for (const auto& [a, b] : host_runs_)
      check(cudaMemcpyAsync(logits_host_ + a * V, logits_dev_ + a * V, size_t(b - a) * V * 4, cudaMemcpyDeviceToHost, stream_),
            "copy logits");
    check(cudaStreamSynchronize(stream_), "forward step");
    if (copy_rows)
      for (const auto& [a, b] : host_runs_) std::memcpy(logits + a * V, logits_host_ + a * V, size_t(b - a) * V * 4);
    if (draws) draws_.take(D, *draws);
  }

  int batch_bucket_limit() const { return std::min(256, std::max(1, opts_.max_batch_size)); }

  StepArrays arrays(int32_t* base) const {
    const size_t T = max_tokens_, S = max_seqs_;
    const size_t L = meta_ints_ - 4 * T - 4 * S - S * size_t(table_width_);
    StepArrays a;
    a.tokens = base;
    a.positions = a.tokens + T;
    a.slots = a.positions + T;
    a.token_seq = a.slots + T;
    a.logit_rows = a.token_seq + T;
    a.q_start = a.logit_rows + L;
    a.q_len = a.q_start + S;
    a.ctx_len = a.q_len + S;
    a.seq_index = a.ctx_len + S;
    a.tables = a.seq_index + S;
    return a;
  }

  void copy(int32_t* dst, const int32_t* src, size_t n) {
    if (n) check(cudaMemcpyAsync(dst, src, n * 4, cudaMemcpyHostToDevice, stream_), "copy step metadata");
  }

  // Copies the used part of each array (the stream orders them before the step's kernels).
  void upload(int T, int L, int P, int S) {
    copy(dev_.tokens, host_.tokens, T);
    copy(dev_.positions, host_.positions, T);
    copy(dev_.slots, host_.slots, T);
    copy(dev_.token_seq, host_.token_seq, T);
    copy(dev_.logit_rows, host_.logit_rows, L);
    copy(dev_.q_start, host_.q_start, P);
    copy(dev_.q_len, host_.q_len, P);
    copy(dev_.ctx_len, host_.ctx_len, P);
    copy(dev_.seq_index, host_.seq_index, P);
    copy(dev_.tables, host_.tables, size_t(S) * table_width_);
  }

  // This step's adapters on the GPU; a scratch that moved invalidates the graphs that read it.
  void prepare_lora() {
    if (!lora_) lora_ = std::make_unique<CudaLoraAdapters>(max_tokens_);
    if (!lora_->prepare(lora_rows_, stream_)) return;
    check(cudaStreamSynchronize(stream_), "LoRA scratch");
    for (auto it = graphs_.begin(); it != graphs_.end();) {
      if (it->first & kLoraGraph) {
        cudaGraphExecDestroy(it->second);
        it = graphs_.erase(it);
      } else {
        ++it;
      }
    }
  }

  cu::StepInput step_input(int T, int R, int P, int max_q, int L, bool identity, int max_ctx, bool lora) const {
    cu::StepInput in;
    if (lora) in.lora = lora_->step();
    in.num_tokens = T;
    in.num_decode = R;
    in.tokens = dev_.tokens;
    in.positions = dev_.positions;
    in.slots = dev_.slots;
    in.token_seq = dev_.token_seq;
    in.prefill = cu::PrefillBatch{P, max_q, T - R, dev_.q_start, dev_.q_len, dev_.ctx_len, dev_.seq_index, nullptr, nullptr, 0};
    in.tables = cu::PagedTables{dev_.tables, table_width_};
    in.num_logits = L;
    in.logit_rows = identity ? nullptr : dev_.logit_rows;
    in.max_context = max_ctx;
    return in;
  }

  // Replays (capturing on first use) the decode graph of `bucket` rows at contexts up to `ctx`,
  // with the LoRA updates when `lora` (a graph of their own: steps without adapters skip them).
  static constexpr int64_t kLoraGraph = int64_t(1) << 62;
  void run_graph(int bucket, int ctx, bool lora) {
    const int64_t key = (int64_t(bucket) << 32 | ctx) | (lora ? kLoraGraph : 0);
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      const cu::StepInput in = step_input(bucket, bucket, 0, 0, bucket, true, ctx, lora);
      const cu::Exec ex{stream_, true};
      // One eager step first: algorithm choices and kernel attributes are settled outside capture.
      check(forward_->run(in, logits_dev_, ex));
      check(cudaStreamSynchronize(stream_), "decode warm-up");
      cudaGraph_t graph;
      check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin graph capture");
      const cu::Status st = forward_->run(in, logits_dev_, ex);
      const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
      check(st);
      check(e, "end graph capture");
      cudaGraphExec_t exec;
      const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      check(ie, "instantiate decode graph");
      it = graphs_.emplace(key, exec).first;
      return;  // the warm-up step already produced this step's logits
    }
    check(cudaGraphLaunch(it->second, stream_), "launch decode graph");
  }

  ModelConfig full_;  // the whole model: the vocabulary of the logits
  ModelConfig cfg_;   // what this runner's weights hold: full_, or its tensor-parallel shard
  std::unique_ptr<cu::TensorParallelHooks> tp_hooks_;
  CudaRunnerOptions opts_;
  std::string kernels_;
  int num_sms_ = 132;
  cudaStream_t stream_ = nullptr;
  cu::LtContext* lt_ = nullptr;
  DeviceMemory mem_;
  cu::ModelWeights weights_;
  int64_t weight_bytes_ = 0;
  std::unique_ptr<cu::Forward> forward_;
  void* kv_ = nullptr;
  int block_size_ = 16;
  int max_tokens_ = 0, max_seqs_ = 0, table_width_ = 0;
  size_t meta_ints_ = 0;
  int32_t* host_meta_ = nullptr;
  int32_t* dev_meta_ = nullptr;
  StepArrays host_{}, dev_{};
  float* logits_dev_ = nullptr;
  float* logits_host_ = nullptr;
  int max_logits_ = 0;
  int last_logit_rows_ = 0;             // logit rows of the last step (final_hidden's bound)
  cu::bf16* hidden_dev_ = nullptr;      // [max_logits_, hidden] final-norm rows (embeddings)
  uint16_t* hidden_host_ = nullptr;     // pinned copy of them
  DeviceDraws draws_;
  std::vector<uint8_t> on_device_;               // [L] this step's rows drawn on the device
  std::vector<std::pair<int, int>> host_runs_;   // [first, last) runs of rows the host reads
  std::map<int64_t, cudaGraphExec_t> graphs_;
  std::vector<const LoraAdapter*> lora_rows_;  // this step's adapter per token row (execution order)
  std::unique_ptr<CudaLoraAdapters> lora_;     // made on the first step with an adapter
  std::unique_ptr<CalibrationTaps> taps_;  // made on the first observed step
};

}  // namespace

bool cuda_device_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why) *why = e != cudaSuccess ? std::string("no usable CUDA driver or device (") + cudaGetErrorString(e) + ")"
                                     : std::string("no CUDA device is visible");
    return false;
  }
  return true;
}

int64_t cuda_free_memory_bytes(int device) {
  size_t free_b = 0, total = 0;
  cudaSetDevice(device);
  if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) return 0;
  return int64_t(free_b);
}

std::unique_ptr<ModelRunner> make_cuda_runner(const ModelConfig& cfg, TensorStore& store, const CudaRunnerOptions& opts) {
  return std::make_unique<CudaRunner>(cfg, store, opts);
}

}  // namespace grpst
