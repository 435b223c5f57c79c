#include "runtime/cuda_device_draws.h"

#include <cstring>
#include <string>

#include "grpst/common.h"

namespace grpst {

namespace cu = grpst::cuda;

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA backend: ") + what + ": " + cudaGetErrorString(e));
}
}  // namespace

void StagedBuffer::reserve(size_t bytes) {
  if (bytes <= capacity_) return;
  release();
  // Doubling keeps a long generation's growing histories to a few reallocations.
  size_t cap = 64 << 10;
  while (cap < bytes) cap *= 2;
  check(cudaMallocHost(&host_, cap), "cudaMallocHost sampling history");
  check(cudaMalloc(&dev_, cap), "cudaMalloc sampling history");
  capacity_ = cap;
}

const void* StagedBuffer::upload(const void* src, size_t bytes, cudaStream_t stream, const char* what) {
  reserve(bytes);
  std::memcpy(host_, src, bytes);
  check(cudaMemcpyAsync(dev_, host_, bytes, cudaMemcpyHostToDevice, stream), what);
  return dev_;
}

void StagedBuffer::release() {
  if (host_) cudaFreeHost(host_);
  if (dev_) cudaFree(dev_);
  host_ = dev_ = nullptr;
  capacity_ = 0;
}

void DeviceDraws::init(int max_rows, int vocab, DeviceMemory& mem) {
  max_rows_ = max_rows;
  vocab_ = vocab;
  const size_t L = size_t(max_rows);
  work_ = static_cast<float*>(mem.get(L * size_t(vocab) * 4, "sampling workspace"));
  params_dev_ = static_cast<cu::SampleParams*>(mem.get(L * sizeof(cu::SampleParams), "sampling parameters"));
  tokens_dev_ = static_cast<int32_t*>(mem.get(L * 4, "sampled tokens"));
  logprobs_dev_ = static_cast<float*>(mem.get(L * 4, "sampled logprobs"));
  check(cudaMallocHost(&params_host_, L * sizeof(cu::SampleParams)), "cudaMallocHost");
  check(cudaMallocHost(&results_host_, L * 8), "cudaMallocHost");
  const size_t top = L * cu::kMaxTopLogprobs;
  top_rows_dev_ = static_cast<cu::TopLogprobsRow*>(mem.get(L * sizeof(cu::TopLogprobsRow), "top logprobs rows"));
  top_tokens_dev_ = static_cast<int32_t*>(mem.get(top * 4, "top logprobs tokens"));
  top_logprobs_dev_ = static_cast<float*>(mem.get(top * 4, "top logprobs"));
  check(cudaMallocHost(&top_rows_host_, L * sizeof(cu::TopLogprobsRow)), "cudaMallocHost");
  check(cudaMallocHost(&top_host_, top * 8), "cudaMallocHost");
  target_logprobs_dev_ = static_cast<float*>(mem.get(L * 4, "prompt logprobs"));
  target_ranks_dev_ = static_cast<int32_t*>(mem.get(L * 4, "prompt ranks"));
  check(cudaMallocHost(&targets_host_, L * 8), "cudaMallocHost");
}

void DeviceDraws::release() {
  if (params_host_) cudaFreeHost(params_host_);
  if (results_host_) cudaFreeHost(results_host_);
  if (top_rows_host_) cudaFreeHost(top_rows_host_);
  if (top_host_) cudaFreeHost(top_host_);
  if (targets_host_) cudaFreeHost(targets_host_);
  targets_host_ = nullptr;
  params_host_ = nullptr;
  results_host_ = nullptr;
  top_rows_host_ = nullptr;
  top_host_ = nullptr;
  prompt_tokens_.release();
  output_counts_.release();
  edits_.release();
  masks_.release();
}

int DeviceDraws::enqueue(const StepBatch& batch, const float* logits, cudaStream_t stream) {
  const int D = int(batch.device_samples.size());
  if (D > max_rows_) throw Error("CUDA backend: more device draws in a step than logit rows");
  if (D > 0) enqueue_draws(batch, logits, stream);
  enqueue_lists(batch, logits, stream);
  prompt_rows_ = int(batch.device_prompt_rows.size());
  return D;
}

void DeviceDraws::enqueue_draws(const StepBatch& batch, const float* logits, cudaStream_t stream) {
  const int D = int(batch.device_samples.size());
  const size_t P = batch.penalty_prompt_tokens.size(), O = batch.penalty_output_counts.size();
  const size_t E = batch.logit_edits.size(), words = size_t(vocab_ + 31) / 32, M = batch.masks.size() / words;
  for (int i = 0; i < D; ++i) {
    const DeviceSample& d = batch.device_samples[size_t(i)];
    if (size_t(d.prompt_begin) + size_t(d.prompt_count) > P || 2 * (size_t(d.output_begin) + size_t(d.output_count)) > O)
      throw Error("CUDA backend: a device draw's penalty history lies outside the step's lists");
    if (size_t(d.edit_begin) + size_t(d.edit_count) > E || (d.mask >= 0 && size_t(d.mask) >= M))
      throw Error("CUDA backend: a device draw's logit edits or mask lie outside the step's lists");
    cu::SampleParams& p = params_host_[i];
    p.temperature = d.temperature;
    p.top_p = d.top_p;
    p.min_p = d.min_p;
    p.repetition_penalty = d.repetition_penalty;
    p.presence_penalty = d.presence_penalty;
    p.frequency_penalty = d.frequency_penalty;
    p.top_k = d.top_k;
    p.row = d.logit_row;
    p.prompt_begin = d.prompt_begin;
    p.prompt_count = d.prompt_count;
    p.output_begin = d.output_begin;
    p.output_count = d.output_count;
    p.edit_begin = d.edit_begin;
    p.edit_count = d.edit_count;
    p.mask = d.mask;
    p.seed = d.seed;
    p.step = d.step;
  }
  // The previous step synchronized the stream, so the staging buffers are free to refill (or grow).
  cu::SampleHistory history{nullptr, nullptr, nullptr, nullptr};
  if (P > 0)
    history.prompt_tokens = static_cast<const int32_t*>(
        prompt_tokens_.upload(batch.penalty_prompt_tokens.data(), P * 4, stream, "copy penalty prompt tokens"));
  if (O > 0)
    history.output_counts = static_cast<const int2*>(
        output_counts_.upload(batch.penalty_output_counts.data(), O * 4, stream, "copy penalty output counts"));
  if (E > 0)
    history.edits = static_cast<const LogitEdit*>(edits_.upload(batch.logit_edits.data(), E * sizeof(LogitEdit), stream, "copy logit edits"));
  if (M > 0)
    history.masks = static_cast<const uint32_t*>(masks_.upload(batch.masks.data(), M * words * 4, stream, "copy token masks"));
  check(cudaMemcpyAsync(params_dev_, params_host_, size_t(D) * sizeof(cu::SampleParams), cudaMemcpyHostToDevice, stream),
        "copy sampling parameters");
  const cu::Status st = cu::sample(logits, params_dev_, history, D, vocab_, work_, tokens_dev_, logprobs_dev_, cu::Exec{stream, false});
  if (!st.ok()) throw Error("CUDA backend: " + st.message());
  check(cudaMemcpyAsync(results_host_, tokens_dev_, size_t(D) * 4, cudaMemcpyDeviceToHost, stream), "copy tokens");
  check(cudaMemcpyAsync(results_host_ + max_rows_, logprobs_dev_, size_t(D) * 4, cudaMemcpyDeviceToHost, stream),
        "copy logprobs");
}

// One top-logprobs launch for the draws that want top entries and every prompt row (its
// target's logprob and rank with them), from the raw logits, as the host lists them.
void DeviceDraws::enqueue_lists(const StepBatch& batch, const float* logits, cudaStream_t stream) {
  const int D = int(batch.device_samples.size()), P = int(batch.device_prompt_rows.size());
  top_slot_.assign(size_t(D), -1);
  int R = 0;
  for (int i = 0; i < D; ++i) {
    const DeviceSample& d = batch.device_samples[size_t(i)];
    if (d.top_n <= 0) continue;
    if (d.top_n > cu::kMaxTopLogprobs) throw Error("CUDA backend: more top logprobs than the device draws (20)");
    top_rows_host_[R] = cu::TopLogprobsRow{d.logit_row, d.top_n, -1};
    top_slot_[size_t(i)] = R++;
  }
  prompt_first_ = R;
  for (const DevicePromptRow& p : batch.device_prompt_rows) {
    if (p.top_n > cu::kMaxTopLogprobs) throw Error("CUDA backend: more prompt top logprobs than the device lists (20)");
    if (p.target < 0 || p.target >= vocab_) throw Error("CUDA backend: a prompt logprob row's token is outside the vocabulary");
    if (R >= max_rows_) throw Error("CUDA backend: more top logprob rows in a step than logit rows");
    top_rows_host_[R++] = cu::TopLogprobsRow{p.logit_row, std::max(0, p.top_n), p.target};
  }
  if (R == 0) return;
  const size_t n = size_t(R) * cu::kMaxTopLogprobs;
  check(cudaMemcpyAsync(top_rows_dev_, top_rows_host_, size_t(R) * sizeof(cu::TopLogprobsRow), cudaMemcpyHostToDevice, stream),
        "copy top logprobs rows");
  const cu::Status ts = cu::top_logprobs(logits, top_rows_dev_, R, vocab_, top_tokens_dev_, top_logprobs_dev_, target_logprobs_dev_,
                                         target_ranks_dev_, cu::Exec{stream, false});
  if (!ts.ok()) throw Error("CUDA backend: " + ts.message());
  check(cudaMemcpyAsync(top_host_, top_tokens_dev_, n * 4, cudaMemcpyDeviceToHost, stream), "copy top logprobs tokens");
  check(cudaMemcpyAsync(top_host_ + size_t(max_rows_) * cu::kMaxTopLogprobs, top_logprobs_dev_, n * 4, cudaMemcpyDeviceToHost, stream),
        "copy top logprobs");
  if (P > 0) {
    check(cudaMemcpyAsync(targets_host_, target_logprobs_dev_ + R - P, size_t(P) * 4, cudaMemcpyDeviceToHost, stream),
          "copy prompt logprobs");
    check(cudaMemcpyAsync(targets_host_ + max_rows_, target_ranks_dev_ + R - P, size_t(P) * 4, cudaMemcpyDeviceToHost, stream),
          "copy prompt ranks");
  }
}

void DeviceDraws::take(int count, DeviceDrawResults& out) const {
  static_assert(DeviceDrawResults::kMaxTop == cu::kMaxTopLogprobs, "one limit on device top logprobs");
  const size_t K = DeviceDrawResults::kMaxTop;
  out.tokens.assign(results_host_, results_host_ + count);
  out.logprobs.resize(size_t(count));
  std::memcpy(out.logprobs.data(), results_host_ + max_rows_, size_t(count) * 4);
  out.top_tokens.assign(size_t(count) * K, -1);
  out.top_logprobs.assign(size_t(count) * K, 0.f);
  const float* top_lp = reinterpret_cast<const float*>(top_host_ + size_t(max_rows_) * K);
  for (int i = 0; i < count; ++i) {
    const int slot = top_slot_[size_t(i)];
    if (slot < 0) continue;
    std::memcpy(out.top_tokens.data() + size_t(i) * K, top_host_ + size_t(slot) * K, K * 4);
    std::memcpy(out.top_logprobs.data() + size_t(i) * K, top_lp + size_t(slot) * K, K * 4);
  }
  const size_t P = size_t(prompt_rows_);
  out.prompt_logprobs.resize(P);
  std::memcpy(out.prompt_logprobs.data(), targets_host_, P * 4);
  out.prompt_ranks.assign(targets_host_ + max_rows_, targets_host_ + max_rows_ + P);
  out.prompt_top_tokens.assign(top_host_ + size_t(prompt_first_) * K, top_host_ + (size_t(prompt_first_) + P) * K);
  out.prompt_top_logprobs.resize(P * K);
  std::memcpy(out.prompt_top_logprobs.data(), top_lp + size_t(prompt_first_) * K, P * K * 4);
}

}  // namespace grpst
