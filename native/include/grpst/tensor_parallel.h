// Tensor parallelism (Megatron layout, src/build/shard.ts): rank r of N holds 1/N of the query
// heads, KV heads and MLP channels and 1/N of the vocabulary rows of the embeddings and lm_head.
// A runner given a TensorParallel computes its shard's part of each layer and combines partial
// results through the group's collectives: the embedding and the o_proj / down_proj outputs are
// all-reduced, the logits all-gathered (every rank ends with the full [rows, vocab] logits).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "grpst/collective.h"
#include "grpst/model_config.h"

namespace grpst {

struct TpShard {
  int rank = 0;
  int size = 1;
  int num_heads = 0;          // query heads of this rank
  int num_kv_heads = 0;       // KV heads of this rank
  int intermediate_size = 0;  // MLP channels of this rank
  int vocab_start = 0;        // first vocabulary row of this rank's embeddings and lm_head
  int vocab_rows = 0;         // vocabulary rows of this rank
};

/** Rank `rank`'s equal share of `full`; throws Error naming the sizes that work when N does not divide. */
TpShard tp_shard(const ModelConfig& full, int rank, int size);
/** The model as the shard's tensors describe it (local heads, channels, vocabulary rows). */
ModelConfig shard_config(const ModelConfig& full, const TpShard& s);

struct TensorParallel {
  TpShard shard;
  Collective* comm = nullptr;  // not owned; null: the whole model, no collectives
  bool on() const { return comm != nullptr; }
};

}  // namespace grpst
