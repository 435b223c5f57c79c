// The tiny fixture checkpoints on the GPU, for the whole-model parity runs: the references
// exported as text by scripts/gpu/export-fixtures.ts, the weights regenerated from their hash
// (as src/model/tiny-checkpoint.ts writes them), uploaded whole or as one rank's
// tensor-parallel shard (Megatron layout, as src/build/shard.ts cuts engines: rank r of N holds
// 1/N of the query heads, KV heads, MLP channels and vocabulary rows).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "../../../native/src/runtime/cuda_forward.h"
#include "harness.h"

namespace harness {

struct PromptRef {
  std::string name;
  std::vector<int32_t> ids, greedy;
  std::vector<double> logprobs, margins;  // transformers: per prompt position; top-2 margin per greedy step
};

struct Fixture {
  std::string name;
  uint32_t seed = 0;
  int H = 0, I = 0, L = 0, nh = 0, nkv = 0, hd = 0, V = 0;
  float eps = 1e-6f, attention_scaling = 1.f;
  bool tie = false;
  std::vector<float> inv_freq;
  std::map<std::string, std::pair<double, double>> init;  // kind -> (bound or bound*sqrt(fan_in), offset)
  std::vector<PromptRef> prompts;
};

// Reads DIR/NAME.txt; false when it is missing or holds no model.
bool load_fixture(const std::string& path, Fixture& f);

// Device allocations of one uploaded model, freed with it. Failures set `failed` (no Checks
// calls: the tensor-parallel ranks upload from threads of their own).
struct DevModel {
  std::vector<void*> ptrs;
  bool failed = false;
  DevModel() = default;
  DevModel(const DevModel&) = delete;
  DevModel& operator=(const DevModel&) = delete;
  ~DevModel();
  const void* up(const void* data, size_t bytes);
  void* zeros(size_t bytes);
};

// Rank `rank` of `size` (size 1: the whole model): its dims (local heads, channels, vocabulary
// rows) and bf16 weights on the device, a bf16 KV cache of `max_len` tokens (identity block
// table: slot = position), and the RoPE table. False when a device allocation or copy failed.
struct FixtureModel {
  grpst::cuda::ModelDims d;
  grpst::cuda::ModelWeights w;
  grpst::cuda::KvCache cache;
  int blocks = 0;
  DevModel mem;
};
bool upload_fixture(const Fixture& f, int rank, int size, int max_len, FixtureModel& m);

double log_softmax_at(const float* row /*[V]*/, int V, int id);
// Top-2 margin of a logits row in logprob units (the log-softmax normaliser cancels).
double top2_margin(const float* row /*[V]*/, int V);

}  // namespace harness
