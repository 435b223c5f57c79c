// Structured outputs in the addon: createVocabulary() builds the token trie once per tokenizer,
// compileGrammar() turns a grammar from src/structured into a shared matcher, and
// NativeGrammar.constraint() makes the per-request handle that SubmitRequest.constraint takes
// (a NativeConstraint, as engine_wrap.cpp expects). NativeGrammarMatcher steps one matcher from
// JS for tests and benchmarks.
#include <napi.h>

#include <chrono>
#include <memory>

#include "addon/convert.h"
#include "addon/engine_wrap.h"
#include "grammar/constraint.h"
#include "grammar/matcher.h"
#include "grammar/vocab.h"
#include "grpst/common.h"

namespace grpst::addon {

namespace {

using grammar::ConstraintOptions;
using grammar::GrammarConstraint;
using grammar::GrammarConstraintFactory;
using grammar::Matcher;
using grammar::Vocabulary;

template <class T>
T typed_array(const Napi::Value& v, napi_typedarray_type type, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) throw Error(std::string(what));
  return v.As<T>();
}

std::vector<int32_t> int_list(const Napi::Object& o, const char* key) {
  std::vector<int32_t> out;
  if (!o.Has(key) || o.Get(key).IsUndefined()) return out;
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw Error(std::string(key) + " must be an array of token ids");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  return out;
}

ConstraintOptions options_from_js(const Napi::Value& v) {
  ConstraintOptions o;
  if (v.IsUndefined()) return o;
  if (!v.IsObject()) throw Error("constraint options must be an object");
  Napi::Object obj = v.As<Napi::Object>();
  o.max_tokens = int(get_number(obj, "maxTokens", 0));
  o.think_max_tokens = int(get_number(obj, "thinkMaxTokens", -1));
  o.eos = int_list(obj, "eosTokenIds");
  if (o.max_tokens < 0) throw Error("maxTokens must not be negative");
  return o;
}

class NativeVocabulary : public Napi::ObjectWrap<NativeVocabulary> {
 public:
  static Napi::FunctionReference constructor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NativeVocabulary", {InstanceAccessor("size", &NativeVocabulary::Size, nullptr),
                                                             InstanceAccessor("trieNodes", &NativeVocabulary::TrieNodes, nullptr)});
    constructor = Napi::Persistent(f);
    constructor.SuppressDestruct();
    return f;
  }
  NativeVocabulary(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeVocabulary>(info) {}
  std::shared_ptr<const Vocabulary> vocab;

 private:
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), vocab->size()); }
  Napi::Value TrieNodes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), vocab->trie_size()); }
};
Napi::FunctionReference NativeVocabulary::constructor;

class NativeGrammarMatcher : public Napi::ObjectWrap<NativeGrammarMatcher> {
 public:
  static Napi::FunctionReference constructor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NativeGrammarMatcher",
                                   {InstanceMethod("allowed", &NativeGrammarMatcher::Allowed),
                                    InstanceMethod("fillMask", &NativeGrammarMatcher::FillMask),
                                    InstanceMethod("accept", &NativeGrammarMatcher::Accept),
                                    InstanceAccessor("complete", &NativeGrammarMatcher::Complete, nullptr),
                                    InstanceAccessor("alive", &NativeGrammarMatcher::Alive, nullptr),
                                    InstanceAccessor("remaining", &NativeGrammarMatcher::Remaining, nullptr)});
    constructor = Napi::Persistent(f);
    constructor.SuppressDestruct();
    return f;
  }
  NativeGrammarMatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeGrammarMatcher>(info) {}
  std::unique_ptr<GrammarConstraint> c;
  std::shared_ptr<Matcher> matcher;
  int vocab = 0;

 private:
  /** allowed() -> Int32Array of the tokens allowed next (end-of-sequence included when complete). */
  Napi::Value Allowed(const Napi::CallbackInfo& info) {
    std::vector<uint32_t> bits((size_t(vocab) + 31) / 32, 0u);
    c->fill_allowed(bits.data(), vocab);
    std::vector<int32_t> ids;
    for (size_t w = 0; w < bits.size(); w++)
      for (uint32_t x = bits[w]; x; x &= x - 1) ids.push_back(int32_t(w * 32 + size_t(__builtin_ctz(x))));
    Napi::Int32Array out = Napi::Int32Array::New(info.Env(), ids.size());
    std::copy(ids.begin(), ids.end(), out.Data());
    return out;
  }
  /** fillMask(Uint32Array words) -> seconds: what the sampler does each step, timed in native code. */
  Napi::Value FillMask(const Napi::CallbackInfo& info) {
    Napi::Uint32Array words = typed_array<Napi::Uint32Array>(info[0], napi_uint32_array, "fillMask(words) needs a Uint32Array");
    const int n = int(std::min<size_t>(words.ElementLength() * 32, size_t(vocab)));
    std::fill(words.Data(), words.Data() + words.ElementLength(), 0u);
    const auto t0 = std::chrono::steady_clock::now();
    c->fill_allowed(words.Data(), n);
    return Napi::Number::New(info.Env(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  /** accept(token) -> false once the token (or an earlier one) was not allowed. */
  Napi::Value Accept(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Error("accept(token) needs a token id");
    c->accept(info[0].As<Napi::Number>().Int32Value());
    return Napi::Boolean::New(info.Env(), c->alive());
  }
  Napi::Value Complete(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), c->complete()); }
  Napi::Value Alive(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), c->alive()); }
  /** Fewest bytes or special tokens that still complete the output (0 when complete). */
  Napi::Value Remaining(const Napi::CallbackInfo& info) {
    if (!c->alive()) return info.Env().Null();
    if (c->ended()) return Napi::Number::New(info.Env(), 0);
    std::lock_guard<std::mutex> lock(matcher->mutex());
    return Napi::Number::New(info.Env(), double(matcher->distance(c->state())));
  }
};
Napi::FunctionReference NativeGrammarMatcher::constructor;

class NativeGrammar : public Napi::ObjectWrap<NativeGrammar> {
 public:
  static Napi::FunctionReference constructor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NativeGrammar",
                                   {InstanceMethod("constraint", &NativeGrammar::Constraint),
                                    InstanceMethod("matcher", &NativeGrammar::MakeMatcher),
                                    InstanceMethod("match", &NativeGrammar::Match),
                                    InstanceMethod("stats", &NativeGrammar::Stats),
                                    InstanceAccessor("shortestOutput", &NativeGrammar::Shortest, nullptr)});
    constructor = Napi::Persistent(f);
    constructor.SuppressDestruct();
    return f;
  }
  NativeGrammar(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeGrammar>(info) {}
  std::shared_ptr<Matcher> matcher;

 private:
  /** constraint({maxTokens, eosTokenIds, thinkMaxTokens}) -> NativeConstraint for SubmitRequest.constraint. */
  Napi::Value Constraint(const Napi::CallbackInfo& info) {
    ConstraintOptions o = options_from_js(info.Length() > 0 ? info[0] : info.Env().Undefined());
    Napi::Object obj = NativeConstraint::constructor.New({});
    NativeConstraint::Unwrap(obj)->factory = std::make_shared<GrammarConstraintFactory>(matcher, std::move(o));
    return obj;
  }
  /** matcher(options) -> NativeGrammarMatcher: one sequence's constraint, stepped from JS. */
  Napi::Value MakeMatcher(const Napi::CallbackInfo& info) {
    ConstraintOptions o = options_from_js(info.Length() > 0 ? info[0] : info.Env().Undefined());
    Napi::Object obj = NativeGrammarMatcher::constructor.New({});
    NativeGrammarMatcher* m = NativeGrammarMatcher::Unwrap(obj);
    m->matcher = matcher;
    m->vocab = matcher->vocab().size();
    m->c = std::make_unique<GrammarConstraint>(matcher, o);
    return obj;
  }
  /** match(bytes) -> "complete" | "prefix" | "rejected": the grammar run over raw bytes from the start. */
  Napi::Value Match(const Napi::CallbackInfo& info) {
    Napi::Uint8Array bytes = typed_array<Napi::Uint8Array>(info[0], napi_uint8_array, "match(bytes) needs a Uint8Array");
    std::lock_guard<std::mutex> lock(matcher->mutex());
    int32_t s = matcher->initial_state();
    for (size_t i = 0; i < bytes.ElementLength() && s >= 0; i++) s = matcher->advance(s, bytes.Data()[i]);
    const char* r = s < 0 ? "rejected" : matcher->complete(s) ? "complete" : "prefix";
    return Napi::String::New(info.Env(), r);
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    grammar::MatcherStats s;
    {
      std::lock_guard<std::mutex> lock(matcher->mutex());
      s = matcher->stats();
    }
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("nodes", matcher->grammar().num_nodes());
    o.Set("states", double(s.states));
    o.Set("stacks", double(s.stacks));
    o.Set("cachedMasks", double(s.cached_masks));
    o.Set("maskBytes", double(s.mask_bytes));
    o.Set("masksComputed", double(s.masks_computed));
    o.Set("maskHits", double(s.mask_hits));
    o.Set("transitions", double(s.transitions));
    o.Set("maskSeconds", s.mask_seconds);
    o.Set("fills", double(s.fills));
    o.Set("fillSeconds", s.fill_seconds);
    return o;
  }
  Napi::Value Shortest(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(matcher->mutex());
    return Napi::Number::New(info.Env(), double(matcher->distance(matcher->initial_state())));
  }
};
Napi::FunctionReference NativeGrammar::constructor;

/** createVocabulary(data: Uint8Array, offsets: Uint32Array, addedIds: Int32Array) -> NativeVocabulary */
Napi::Value CreateVocabulary(const Napi::CallbackInfo& info) {
  if (info.Length() < 3) throw Error("createVocabulary(data, offsets, addedIds) needs three arguments");
  Napi::Uint8Array data = typed_array<Napi::Uint8Array>(info[0], napi_uint8_array, "data must be a Uint8Array");
  Napi::Uint32Array offsets = typed_array<Napi::Uint32Array>(info[1], napi_uint32_array, "offsets must be a Uint32Array");
  Napi::Int32Array added = typed_array<Napi::Int32Array>(info[2], napi_int32_array, "addedIds must be an Int32Array");
  if (offsets.ElementLength() < 2) throw Error("offsets needs at least two entries");
  const int size = int(offsets.ElementLength() - 1);
  if (offsets.Data()[size] > data.ElementLength()) throw Error("offsets point past the end of data");
  auto v = std::make_shared<Vocabulary>(data.Data(), offsets.Data(), size,
                                        std::vector<int32_t>(added.Data(), added.Data() + added.ElementLength()));
  Napi::Object obj = NativeVocabulary::constructor.New({});
  NativeVocabulary::Unwrap(obj)->vocab = std::move(v);
  return obj;
}

/** compileGrammar(vocab: NativeVocabulary, grammar: Int32Array) -> NativeGrammar */
Napi::Value CompileGrammar(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsObject() ||
      !info[0].As<Napi::Object>().InstanceOf(NativeVocabulary::constructor.Value()))
    throw Error("compileGrammar(vocab, grammar) needs a vocabulary from createVocabulary");
  Napi::Int32Array g = typed_array<Napi::Int32Array>(info[1], napi_int32_array, "grammar must be an Int32Array");
  auto vocab = NativeVocabulary::Unwrap(info[0].As<Napi::Object>())->vocab;
  auto matcher = std::make_shared<Matcher>(vocab, grammar::Grammar::parse(g.Data(), g.ElementLength()));
  Napi::Object obj = NativeGrammar::constructor.New({});
  NativeGrammar::Unwrap(obj)->matcher = std::move(matcher);
  return obj;
}

/**
 * maskLogits(words: Uint32Array, logits: Float32Array): sets the logits of tokens whose bit is
 * clear to -Infinity, in place, as the sampler applies a constraint's mask (tests check it
 * against testing every bit).
 */
Napi::Value MaskLogits(const Napi::CallbackInfo& info) {
  if (info.Length() < 2) throw Error("maskLogits(words, logits) needs two arguments");
  Napi::Uint32Array words = typed_array<Napi::Uint32Array>(info[0], napi_uint32_array, "words must be a Uint32Array");
  Napi::Float32Array logits = typed_array<Napi::Float32Array>(info[1], napi_float32_array, "logits must be a Float32Array");
  const size_t vocab = logits.ElementLength();
  if (words.ElementLength() < (vocab + 31) / 32) throw Error("words must hold one bit per logit");
  grammar::mask_logits(words.Data(), logits.Data(), int(vocab));
  return info.Env().Undefined();
}

}  // namespace

void RegisterGrammar(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeVocabulary", NativeVocabulary::Init(env));
  exports.Set("NativeGrammar", NativeGrammar::Init(env));
  exports.Set("NativeGrammarMatcher", NativeGrammarMatcher::Init(env));
  exports.Set("createVocabulary", Napi::Function::New(env, CreateVocabulary, "createVocabulary"));
  exports.Set("compileGrammar", Napi::Function::New(env, CompileGrammar, "compileGrammar"));
  exports.Set("maskLogits", Napi::Function::New(env, MaskLogits, "maskLogits"));
}

}  // namespace grpst::addon
