// What a request asks for and what comes back, in native form (the addon converts from and to
// src/engine/types.ts's SubmitRequest and TokenEvent).
#pragma once
#include <cstdint>
#include <memory>
#include <limits>
#include <string>
#include <vector>

namespace grpst {

struct Request;
struct LoraAdapter;

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy
  int top_k = 0;             // <= 0: off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;  // over prompt and output tokens
  float presence_penalty = 0.0f;    // over output tokens
  float frequency_penalty = 0.0f;   // over output tokens
  bool has_seed = false;
  uint64_t seed = 0;
  /** Whether any of the three penalties changes a logit. */
  bool penalized() const { return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f; }
};

/**
 * Constrained decoding (structured outputs): one instance per sequence, consulted before every
 * sample. A grammar is compiled once into a ConstraintFactory; each sequence starts its own state.
 */
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  /** Sets bit t of `allowed` (ceil(vocab/32) words, all zero on entry) for every token allowed next. */
  virtual void fill_allowed(uint32_t* allowed, int vocab) = 0;
  /** Advances the state past the sampled token (always one that fill_allowed allowed). */
  virtual void accept(int32_t token) = 0;
  /** A copy of the state that walks on alone (a draft model's proposals follow it without moving
   * the original); null where the state cannot be copied, and the proposals go unconstrained. */
  virtual std::unique_ptr<TokenConstraint> clone() const { return nullptr; }
};

class ConstraintFactory {
 public:
  virtual ~ConstraintFactory() = default;
  virtual std::unique_ptr<TokenConstraint> start() const = 0;
  /** The state for one request; factories that need its limits (max_tokens, stop tokens) override it. */
  virtual std::unique_ptr<TokenConstraint> start_for(const Request& request) const { return start(); }
};

struct Request {
  uint64_t id = 0;
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int max_tokens = 16;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;             // keep going past stop tokens
  int min_tokens = 0;                  // stop tokens cannot be sampled before this many (vLLM's min_tokens)
  int logprobs = -1;                   // -1: none; N >= 0: the token's logprob and N alternatives
  bool prompt_logprobs = false;
  int prompt_top_n = -1;               // alternatives per prompt position; < 0: as many as `logprobs` (prompt_alternatives())
  std::vector<int32_t> bad_token_ids;  // never sampled
  // Token sequences never generated whole: each one's last token is banned right after the rest
  // of it among the generated tokens (bad_sequences.h)
  std::vector<std::vector<int32_t>> bad_sequences;
  // OpenAI's logit_bias: added to a token's logit before sampling (-100 all but bans it); the
  // logprobs returned stay the model's own, as OpenAI's do
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::shared_ptr<const ConstraintFactory> constraint;
  // vLLM's cache_salt, hashed (0: none): the root of the request's prefix-cache hash chain, so
  // only requests with the same salt share cached prompt blocks
  uint64_t cache_salt = 0;
  // A LoRA adapter the model runs with for this request (vLLM's multi-LoRA serving); null: the
  // base model. Its cache key joins cache_salt at the root of the prefix-cache hash chain.
  std::shared_ptr<const LoraAdapter> lora;
  // vLLM's priority: under priority scheduling (EngineOptions::priority_scheduling) lower values
  // are admitted first and preempted last; ties go by arrival. Ignored first come, first served.
  int32_t priority = 0;
  // An embedding request: the prompt is computed, nothing is sampled, and the one event carries
  // the final norm's output at the prompt's last token (SeqEvent::embedding), as vLLM's pooling
  // runner takes it for a decoder ("last" pooling, before any normalization)
  bool embed = false;
  // A scoring request (rerankers, /v1/score): the prompt is computed, nothing is sampled, and the
  // one event carries the raw logprob (log-softmax of the logits) of each of these tokens at the
  // prompt's last position (SeqEvent::scores). Empty: not a scoring request.
  std::vector<int32_t> score_ids;
  // A thinking token budget (vLLM's thinking_token_budget, Anthropic's budget_tokens): once a think
  // block opened by `think_open` (in the prompt or generated) holds `think_max_tokens` tokens, the
  // next token is `think_close` whatever the logits say. < 0: unbounded.
  int think_max_tokens = -1;
  int32_t think_open = -1;
  int32_t think_close = -1;
};

/** Alternatives listed per prompt position: prompt_top_n, or as many as `logprobs` asks for. */
inline int prompt_alternatives(const Request& r) { return r.prompt_top_n >= 0 ? r.prompt_top_n : (r.logprobs > 0 ? r.logprobs : 0); }

enum class FinishReason : uint8_t { None = 0, Stop = 1, Length = 2, Cancelled = 3, Error = 4 };

struct TopEntry {
  int32_t token;
  float logprob;
};

/** New output of one sequence in one step (the addon batches many of these per JS call). */
struct SeqEvent {
  uint64_t id = 0;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;          // per token, when the request asked for logprobs
  std::vector<int32_t> top_counts;      // per token: how many entries of `top` belong to it
  std::vector<TopEntry> top;
  FinishReason finish = FinishReason::None;
  int32_t stop_token = -1;
  // The stop token is sampled like any other and its logprob reported (as vLLM does): scorers
  // such as lm-evaluation-harness read the last entry as the generated token's. NaN when the
  // request did not ask for logprobs.
  float stop_logprob = std::numeric_limits<float>::quiet_NaN();
  std::vector<TopEntry> stop_top;
  std::string error;
  std::vector<float> embedding;         // an embedding request's: [hidden_size]
  std::vector<float> scores;            // a scoring request's: [score_ids.size()] logprobs
  int cached_prompt_tokens = -1;        // on the first event
  bool has_prompt_logprobs = false;     // on the first event, when asked
  std::vector<float> prompt_logprobs;   // [prompt_len]; entry 0 is NaN (no logprob)
  std::vector<int32_t> prompt_top_counts;
  std::vector<int32_t> prompt_ranks;  // [num_prompt]: each prompt token's rank (1: the likeliest), 0 at position 0
  std::vector<TopEntry> prompt_top;
};

}  // namespace grpst
