#include "addon/convert.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

namespace grpst::addon {

namespace {

[[noreturn]] void type_error(const std::string& what) { throw Error(what); }

bool present(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

int get_int(const Napi::Object& o, const char* key, int fallback) {
  double d = get_number(o, key, fallback);
  if (d != std::floor(d) || std::fabs(d) > 2147483647.0) type_error(std::string(key) + " must be an integer");
  return int(d);
}

std::vector<int32_t> int_list(const Napi::Value& v, const char* what) {
  std::vector<int32_t> out;
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_int32_array) type_error(std::string(what) + " must be an Int32Array or an array");
    Napi::Int32Array ia = v.As<Napi::Int32Array>();
    out.assign(ia.Data(), ia.Data() + ia.ElementLength());
  } else if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    out.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value e = a.Get(i);
      if (!e.IsNumber()) type_error(std::string(what) + " must hold integers");
      double d = e.As<Napi::Number>().DoubleValue();
      if (d != std::floor(d) || std::fabs(d) > 2147483647.0) type_error(std::string(what) + " must hold integers");
      out.push_back(int32_t(d));
    }
  } else if (!v.IsUndefined() && !v.IsNull()) {
    type_error(std::string(what) + " must be an Int32Array or an array of integers");
  }
  return out;
}

}  // namespace

double get_number(const Napi::Object& o, const char* key, double fallback) {
  if (!present(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) type_error(std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) type_error(std::string(key) + " must be finite");
  return d;
}

std::string get_string(const Napi::Object& o, const char* key, const std::string& fallback) {
  if (!present(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsString()) type_error(std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

bool get_bool(const Napi::Object& o, const char* key, bool fallback) {
  if (!present(o, key)) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) type_error(std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

ModelConfig model_config_from_js(const Napi::Object& o) {
  ModelConfig c;
  c.hidden_size = get_int(o, "hiddenSize", 0);
  c.intermediate_size = get_int(o, "intermediateSize", 0);
  c.num_layers = get_int(o, "numLayers", 0);
  c.num_heads = get_int(o, "numHeads", 0);
  c.num_kv_heads = get_int(o, "numKvHeads", 0);
  c.head_dim = get_int(o, "headDim", 0);
  c.vocab_size = get_int(o, "vocabSize", 0);
  c.rms_norm_eps = float(get_number(o, "rmsNormEps", 1e-6));
  c.tie_word_embeddings = get_bool(o, "tieWordEmbeddings", false);
  c.max_position_embeddings = get_int(o, "maxPositionEmbeddings", 0);
  c.rope_attention_scaling = float(get_number(o, "ropeAttentionScaling", 1.0));
  if (!present(o, "ropeInvFreq") || !o.Get("ropeInvFreq").IsArray()) type_error("ropeInvFreq must be an array");
  Napi::Array f = o.Get("ropeInvFreq").As<Napi::Array>();
  for (uint32_t i = 0; i < f.Length(); i++) {
    Napi::Value v = f.Get(i);
    if (!v.IsNumber()) type_error("ropeInvFreq must hold numbers");
    c.rope_inv_freq.push_back(float(v.As<Napi::Number>().DoubleValue()));
  }
  if (present(o, "moe")) {
    if (!o.Get("moe").IsObject()) type_error("moe must be an object");
    Napi::Object m = o.Get("moe").As<Napi::Object>();
    c.moe.num_experts = get_int(m, "numExperts", 0);
    c.moe.experts_per_tok = get_int(m, "numExpertsPerTok", 0);
    c.moe.intermediate_size = get_int(m, "intermediateSize", 0);
    c.moe.norm_topk_prob = get_bool(m, "normTopkProb", false);
    if (!present(m, "sparseLayers") || !m.Get("sparseLayers").IsArray()) type_error("moe.sparseLayers must be an array");
    Napi::Array sl = m.Get("sparseLayers").As<Napi::Array>();
    for (uint32_t i = 0; i < sl.Length(); i++) {
      Napi::Value v = sl.Get(i);
      if (!v.IsBoolean()) type_error("moe.sparseLayers must hold booleans");
      c.moe.sparse_layers.push_back(v.As<Napi::Boolean>().Value() ? 1 : 0);
    }
  }
  c.validate();
  return c;
}

std::vector<TensorDesc> tensor_table_from_js(const Napi::Array& a) {
  std::vector<TensorDesc> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsObject()) type_error("tensor table entries must be objects");
    Napi::Object o = v.As<Napi::Object>();
    TensorDesc d;
    d.name = get_string(o, "name", "");
    d.file = get_string(o, "file", "");
    if (d.name.empty() || d.file.empty()) type_error("tensor table entries need a name and a file");
    d.offset = uint64_t(get_number(o, "offset", -1));
    d.nbytes = uint64_t(get_number(o, "nbytes", -1));
    if (get_number(o, "offset", -1) < 0 || get_number(o, "nbytes", -1) < 0)
      type_error("tensor " + d.name + " needs a non-negative offset and nbytes");
    d.dtype = parse_dtype(get_string(o, "dtype", ""));
    if (!present(o, "shape") || !o.Get("shape").IsArray()) type_error("tensor " + d.name + " needs a shape array");
    Napi::Array s = o.Get("shape").As<Napi::Array>();
    for (uint32_t j = 0; j < s.Length(); j++) {
      Napi::Value e = s.Get(j);
      if (!e.IsNumber() || e.As<Napi::Number>().DoubleValue() < 0) type_error("tensor " + d.name + " has a bad shape");
      d.shape.push_back(int64_t(e.As<Napi::Number>().DoubleValue()));
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<float> kv_scales_from_js(const Napi::Object& o) {
  std::vector<float> out;
  if (!present(o, "kvCacheScales")) return out;
  Napi::Value v = o.Get("kvCacheScales");
  if (!v.IsArray()) type_error("kvCacheScales must be an array of [k_scale, v_scale] pairs, one per layer");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value pair = a.Get(i);
    if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2)
      type_error("kvCacheScales[" + std::to_string(i) + "] must be a [k_scale, v_scale] pair");
    for (uint32_t j = 0; j < 2; j++) {
      Napi::Value e = pair.As<Napi::Array>().Get(j);
      if (!e.IsNumber()) type_error("kvCacheScales[" + std::to_string(i) + "] must hold numbers");
      out.push_back(float(e.As<Napi::Number>().DoubleValue()));
    }
  }
  return out;
}

EngineOptions engine_options_from_js(const Napi::Object& o) {
  EngineOptions e;
  e.max_batch_size = get_int(o, "maxBatchSize", e.max_batch_size);
  e.max_num_tokens = get_int(o, "maxNumTokens", e.max_num_tokens);
  e.max_seq_len = get_int(o, "maxSeqLen", 0);
  e.kv_block_size = get_int(o, "kvBlockSize", e.kv_block_size);
  e.max_tokens_in_kv = int64_t(get_number(o, "maxTokensInPagedKvCache", 0));
  e.kv_cache_bytes = int64_t(get_number(o, "kvCacheBytes", 0));
  e.kv_free_mem_fraction = get_number(o, "kvCacheFreeMemFraction", 0);
  e.kv_dtype = get_string(o, "kvCacheDtype", "auto");
  e.kv_scales = kv_scales_from_js(o);
  e.prefix_caching = get_bool(o, "enablePrefixCaching", true);
  const std::string policy = get_string(o, "schedulingPolicy", "fcfs");
  if (policy != "fcfs" && policy != "priority") type_error("schedulingPolicy must be \"fcfs\" or \"priority\"");
  e.priority_scheduling = policy == "priority";
  e.sampling_threads = get_int(o, "samplingThreads", 0);
  if (e.sampling_threads < 0 || e.sampling_threads > 256) type_error("samplingThreads must be between 1 and 256 (0 or absent: the default)");
  e.device_sampler_twin = get_bool(o, "deviceSamplerTwin", false);
  e.speculative.num_tokens = get_int(o, "speculativeTokens", 0);
  e.speculative.min_n = get_int(o, "promptLookupMin", e.speculative.min_n);
  e.speculative.max_n = get_int(o, "promptLookupMax", e.speculative.max_n);
  return e;
}

WeightsLoad weights_load_from_js(const Napi::Object& o) {
  WeightsLoad w;
  w.map = get_bool(o, "useMmap", true);
  w.lock = get_bool(o, "useMlock", false);
  return w;
}

Napi::Object weights_report_to_js(Napi::Env env, const WeightsReport& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("mapped", r.mapped);
  o.Set("lockAsked", r.lock_asked);
  o.Set("locked", r.locked);
  o.Set("bytes", double(r.bytes));
  if (!r.lock_warning.empty()) o.Set("lockWarning", r.lock_warning);
  o.Set("hostCopyReleased", r.host_copy_released);
  return o;
}

Request request_from_js(const Napi::Value& id, const Napi::Value& tokens, const Napi::Object& p) {
  Request r;
  if (!id.IsNumber()) type_error("request id must be a number");
  r.id = uint64_t(id.As<Napi::Number>().DoubleValue());
  r.prompt = int_list(tokens, "tokens");
  SamplingParams& s = r.sampling;
  s.temperature = float(get_number(p, "temperature", 1.0));
  s.top_k = get_int(p, "topK", 0);
  s.top_p = float(get_number(p, "topP", 1.0));
  s.min_p = float(get_number(p, "minP", 0.0));
  s.repetition_penalty = float(get_number(p, "repetitionPenalty", 1.0));
  s.presence_penalty = float(get_number(p, "presencePenalty", 0.0));
  s.frequency_penalty = float(get_number(p, "frequencyPenalty", 0.0));
  if (s.temperature < 0) type_error("temperature must be >= 0");
  // Logits divided by a temperature this small overflow float (1e-40 gives inf, then NaN
  // probabilities); the limit of sampling as the temperature goes to 0 is the argmax, which is
  // what vLLM gives below 1e-5 too.
  if (s.temperature < 1e-5f) s.temperature = 0.0f;
  if (!(s.top_p > 0 && s.top_p <= 1)) type_error("topP must be in (0, 1]");
  if (s.min_p < 0 || s.min_p > 1) type_error("minP must be in [0, 1]");
  if (s.repetition_penalty <= 0) type_error("repetitionPenalty must be > 0");
  if (present(p, "seed")) {
    double seed = get_number(p, "seed", 0);
    if (seed != std::floor(seed)) type_error("seed must be an integer");
    s.has_seed = true;
    s.seed = uint64_t(int64_t(seed));
  }
  r.max_tokens = get_int(p, "maxTokens", 16);
  if (r.max_tokens < 0) type_error("maxTokens must be >= 0");
  r.stop_token_ids = int_list(present(p, "stopTokenIds") ? p.Get("stopTokenIds") : p.Env().Undefined(), "stopTokenIds");
  r.ignore_eos = get_bool(p, "ignoreEos", false);
  r.min_tokens = get_int(p, "minTokens", 0);
  if (r.min_tokens < 0) type_error("minTokens must be >= 0");
  r.logprobs = get_int(p, "logprobs", -1);
  if (r.logprobs > 100) type_error("logprobs must be at most 100");
  r.prompt_logprobs = get_bool(p, "promptLogprobs", false);
  r.prompt_top_n = get_int(p, "promptTopLogprobs", -1);
  if (r.prompt_top_n > 100) type_error("promptTopLogprobs must be at most 100");
  if (present(p, "cacheSalt")) {
    // 16 hex digits: the first 64 bits of the salt's SHA-256 (src/engine/engine.ts); never 0.
    Napi::Value v = p.Get("cacheSalt");
    const std::string hex = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
    if (hex.size() != 16 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      type_error("cacheSalt must be 16 lowercase hex digits");
    r.cache_salt = std::strtoull(hex.c_str(), nullptr, 16);
    if (r.cache_salt == 0) r.cache_salt = 1;
  }
  r.embed = get_bool(p, "embed", false);
  r.score_ids = int_list(present(p, "scoreIds") ? p.Get("scoreIds") : p.Env().Undefined(), "scoreIds");
  if (present(p, "priority")) {
    const double priority = get_number(p, "priority", 0);
    if (priority != std::floor(priority) || std::fabs(priority) > 2147483647.0) type_error("priority must be a 32-bit integer");
    r.priority = int32_t(priority);
  }
  r.bad_token_ids = int_list(present(p, "badTokenIds") ? p.Get("badTokenIds") : p.Env().Undefined(), "badTokenIds");
  if (present(p, "badSequences")) {
    // [[token, ...], ...]: each sequence's last token is banned right after the rest of it.
    Napi::Value v = p.Get("badSequences");
    if (!v.IsArray()) type_error("badSequences must be an array of token-id arrays");
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      std::vector<int32_t> seq = int_list(a.Get(i), "badSequences entries");
      if (seq.empty()) type_error("badSequences entries must hold at least one token");
      r.bad_sequences.push_back(std::move(seq));
    }
  }
  if (present(p, "logitBias")) {
    // [token, bias, token, bias, ...]
    Napi::Value v = p.Get("logitBias");
    if (!v.IsArray()) type_error("logitBias must be an array of token, bias pairs");
    Napi::Array a = v.As<Napi::Array>();
    if (a.Length() % 2) type_error("logitBias must be an array of token, bias pairs");
    for (uint32_t i = 0; i < a.Length(); i += 2) {
      Napi::Value t = a.Get(i), b = a.Get(i + 1);
      if (!t.IsNumber() || !b.IsNumber()) type_error("logitBias must hold numbers");
      const double td = t.As<Napi::Number>().DoubleValue(), bd = b.As<Napi::Number>().DoubleValue();
      if (td != std::floor(td) || td < 0 || td > 2147483647.0) type_error("logitBias token ids must be non-negative integers");
      if (!std::isfinite(bd)) type_error("logitBias values must be finite");
      r.logit_bias.emplace_back(int32_t(td), float(bd));
    }
  }
  if (present(p, "thinkBudget")) {
    // {maxTokens, openToken, closeToken}: the thinking token budget and the block's two tokens.
    Napi::Value v = p.Get("thinkBudget");
    if (!v.IsObject()) type_error("thinkBudget must be an object {maxTokens, openToken, closeToken}");
    Napi::Object b = v.As<Napi::Object>();
    r.think_max_tokens = get_int(b, "maxTokens", -1);
    r.think_open = get_int(b, "openToken", -1);
    r.think_close = get_int(b, "closeToken", -1);
    if (r.think_max_tokens < 0) type_error("thinkBudget.maxTokens must be >= 0");
    if (r.think_open < 0 || r.think_close < 0 || r.think_open == r.think_close)
      type_error("thinkBudget.openToken and closeToken must be two different token ids");
  }
  return r;
}

Napi::Object events_to_js(Napi::Env env, const std::vector<SeqEvent>& events) {
  const size_t n = events.size();
  size_t total = 0, total_top = 0;
  for (const auto& e : events) {
    total += e.tokens.size();
    total_top += e.top.size() + e.stop_top.size();
  }
  Napi::Float64Array ids = Napi::Float64Array::New(env, n);
  Napi::Int32Array counts = Napi::Int32Array::New(env, n);
  Napi::Uint8Array finish = Napi::Uint8Array::New(env, n);
  Napi::Int32Array stop = Napi::Int32Array::New(env, n);
  Napi::Float32Array stop_lp = Napi::Float32Array::New(env, n);
  Napi::Int32Array stop_top_counts = Napi::Int32Array::New(env, n);
  Napi::Int32Array cached = Napi::Int32Array::New(env, n);
  Napi::Uint8Array has_lp = Napi::Uint8Array::New(env, n);
  Napi::Int32Array tokens = Napi::Int32Array::New(env, total);
  Napi::Float32Array logprobs = Napi::Float32Array::New(env, total);
  Napi::Int32Array top_counts = Napi::Int32Array::New(env, total);
  Napi::Int32Array top_ids = Napi::Int32Array::New(env, total_top);
  Napi::Float32Array top_lps = Napi::Float32Array::New(env, total_top);
  Napi::Array errors = Napi::Array::New(env);
  Napi::Array prompt = Napi::Array::New(env);
  Napi::Array embeddings = Napi::Array::New(env);
  Napi::Array scores = Napi::Array::New(env);
  size_t t = 0, k = 0;
  for (size_t i = 0; i < n; i++) {
    const SeqEvent& e = events[i];
    ids[i] = double(e.id);
    counts[i] = int32_t(e.tokens.size());
    finish[i] = uint8_t(e.finish);
    stop[i] = e.stop_token;
    stop_lp[i] = e.stop_logprob;
    stop_top_counts[i] = int32_t(e.stop_top.size());
    cached[i] = e.cached_prompt_tokens;
    has_lp[i] = e.logprobs.size() == e.tokens.size() && !e.tokens.empty() ? 1 : 0;
    for (size_t j = 0; j < e.tokens.size(); j++, t++) {
      tokens[t] = e.tokens[j];
      logprobs[t] = j < e.logprobs.size() ? e.logprobs[j] : NAN;
      top_counts[t] = j < e.top_counts.size() ? e.top_counts[j] : 0;
    }
    // The event's token alternatives, then the stop token's (stopTopCounts[i] of them).
    for (const auto* list : {&e.top, &e.stop_top}) {
      for (const TopEntry& te : *list) {
        top_ids[k] = te.token;
        top_lps[k] = te.logprob;
        k++;
      }
    }
    if (!e.error.empty()) errors.Set(uint32_t(i), Napi::String::New(env, e.error));
    if (!e.embedding.empty()) {
      Napi::Float32Array v = Napi::Float32Array::New(env, e.embedding.size());
      std::copy(e.embedding.begin(), e.embedding.end(), v.Data());
      embeddings.Set(uint32_t(i), v);
    }
    if (!e.scores.empty()) {
      Napi::Float32Array v = Napi::Float32Array::New(env, e.scores.size());
      std::copy(e.scores.begin(), e.scores.end(), v.Data());
      scores.Set(uint32_t(i), v);
    }
    if (e.has_prompt_logprobs) {
      Napi::Object p = Napi::Object::New(env);
      Napi::Float32Array lp = Napi::Float32Array::New(env, e.prompt_logprobs.size());
      for (size_t j = 0; j < e.prompt_logprobs.size(); j++) lp[j] = e.prompt_logprobs[j];
      Napi::Int32Array pc = Napi::Int32Array::New(env, e.prompt_top_counts.size());
      for (size_t j = 0; j < e.prompt_top_counts.size(); j++) pc[j] = e.prompt_top_counts[j];
      Napi::Int32Array pi = Napi::Int32Array::New(env, e.prompt_top.size());
      Napi::Float32Array pl = Napi::Float32Array::New(env, e.prompt_top.size());
      for (size_t j = 0; j < e.prompt_top.size(); j++) {
        pi[j] = e.prompt_top[j].token;
        pl[j] = e.prompt_top[j].logprob;
      }
      Napi::Int32Array rk = Napi::Int32Array::New(env, e.prompt_ranks.size());
      for (size_t j = 0; j < e.prompt_ranks.size(); j++) rk[j] = e.prompt_ranks[j];
      p.Set("logprobs", lp);
      p.Set("ranks", rk);
      p.Set("topCounts", pc);
      p.Set("topIds", pi);
      p.Set("topLogprobs", pl);
      prompt.Set(uint32_t(i), p);
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("ids", ids);
  out.Set("counts", counts);
  out.Set("finish", finish);
  out.Set("stopTokens", stop);
  out.Set("stopLogprobs", stop_lp);
  out.Set("stopTopCounts", stop_top_counts);
  out.Set("cachedPromptTokens", cached);
  out.Set("hasLogprobs", has_lp);
  out.Set("tokens", tokens);
  out.Set("logprobs", logprobs);
  out.Set("topCounts", top_counts);
  out.Set("topIds", top_ids);
  out.Set("topLogprobs", top_lps);
  out.Set("errors", errors);
  out.Set("promptLogprobs", prompt);
  out.Set("embeddings", embeddings);
  out.Set("scores", scores);
  return out;
}

Napi::Object stats_to_js(Napi::Env env, const EngineStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("running", s.running);
  o.Set("waiting", s.waiting);
  o.Set("kvBlocksTotal", s.kv_blocks_total);
  o.Set("kvBlocksUsed", s.kv_blocks_used);
  o.Set("kvBlockSize", s.kv_block_size);
  o.Set("prefixCacheHitTokens", double(s.prefix_hit_tokens));
  o.Set("prefixCacheQueryTokens", double(s.prefix_query_tokens));
  o.Set("promptTokensTotal", double(s.prompt_tokens));
  o.Set("generatedTokensTotal", double(s.generated_tokens));
  o.Set("steps", double(s.steps));
  o.Set("preemptions", double(s.preemptions));
  o.Set("specDrafts", double(s.spec_drafts));
  o.Set("specDraftTokens", double(s.spec_draft_tokens));
  o.Set("specAcceptedTokens", double(s.spec_accepted_tokens));
  o.Set("deviceDrawnTokens", double(s.device_drawn_tokens));
  o.Set("devicePromptRows", double(s.device_prompt_rows));
  o.Set("stepSeconds", s.step_seconds);
  o.Set("forwardSeconds", s.forward_seconds);
  return o;
}

Napi::Object info_to_js(Napi::Env env, const EngineInfo& i) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("device", i.device);
  o.Set("kernels", i.kernels);
  o.Set("threads", i.threads);
  o.Set("samplingThreads", i.sampling_threads);
  o.Set("maxBatchSize", i.max_batch_size);
  o.Set("maxSeqLen", i.max_seq_len);
  o.Set("maxNumTokens", i.max_num_tokens);
  o.Set("vocabSize", i.vocab_size);
  o.Set("hiddenSize", i.hidden_size);
  o.Set("lora", i.lora);
  o.Set("quantization", i.quantization);
  o.Set("kvCacheDtype", i.kv_dtype);
  o.Set("schedulingPolicy", i.scheduling_policy);
  o.Set("kvBlocks", i.kv_blocks);
  o.Set("kvBlockSize", i.kv_block_size);
  o.Set("weightBytesPerStep", double(i.weight_bytes_per_step));
  o.Set("kvBytesPerToken", double(i.kv_bytes_per_token));
  if (i.kv_sized_from_bytes > 0) o.Set("kvSizedFromFreeBytes", double(i.kv_sized_from_bytes));
  if (i.speculative.num_tokens > 0) {
    Napi::Object spec = Napi::Object::New(env);
    spec.Set("method", i.speculative_method);
    spec.Set("numSpeculativeTokens", i.speculative.num_tokens);
    if (i.speculative_method == "ngram") {
      spec.Set("promptLookupMin", i.speculative.min_n);
      spec.Set("promptLookupMax", i.speculative.max_n);
    } else {
      spec.Set("draftKvBytes", double(i.draft_kv_bytes));
      spec.Set("draftKvBytesPerToken", double(i.draft_kv_bytes_per_token));
      spec.Set("draftWeightBytesPerStep", double(i.draft_weight_bytes_per_step));
      spec.Set("draftDevice", i.draft_device);
      spec.Set("draftSamplesOnDevice", i.draft_samples_on_device);
    }
    o.Set("speculative", spec);
  }
  return o;
}

}  // namespace grpst::addon
