// ngramDraftSelfTest(seed, sequences): the indexed prompt lookup (NgramIndex) against the scan
// that defines it, on random sequences grown token by token with the index kept across the
// growth, as a sequence's is; and benchNgramDraft(length, reps): both on one sequence without
// repeats (every lookup fails, the scan's worst case). Driven by test/native/speculative.test.ts
// and bench/ngram.ts.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "grpst/ngram_draft.h"

namespace grpst::addon {

namespace {

// Text with loops and quotes: stretches copied from earlier in the sequence, over a small vocabulary.
std::vector<int32_t> repetitive_tokens(std::mt19937& gen, int len, int vocab) {
  std::vector<int32_t> t;
  while (int(t.size()) < len) {
    if (t.size() > 8 && gen() % 3 == 0) {
      const int from = int(gen() % t.size()), n = 1 + int(gen() % 12);
      for (int i = 0; i < n && int(t.size()) < len; i++) t.push_back(t[size_t(from + i) % t.size()]);
    } else {
      t.push_back(int32_t(gen() % uint32_t(vocab)));
    }
  }
  return t;
}

}  // namespace

Napi::Value NgramDraftSelfTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t seed = info.Length() > 0 ? info[0].As<Napi::Number>().Uint32Value() : 1;
  const int sequences = info.Length() > 1 ? info[1].As<Napi::Number>().Int32Value() : 40;
  std::mt19937 gen(seed);
  int64_t lookups = 0, found = 0, mismatches = 0;
  std::string first;
  int32_t a[kMaxSpeculativeTokens], b[kMaxSpeculativeTokens];
  for (int s = 0; s < sequences; s++) {
    const NgramDraftConfig cfg{4, 1 + int(gen() % 3), 2 + int(gen() % 4)};
    const std::vector<int32_t> t = repetitive_tokens(gen, 50 + int(gen() % 400), 2 + int(gen() % 30));
    NgramIndex index;
    for (int len = 0; len <= int(t.size()); len++) {
      const int k = 1 + int(gen() % kMaxSpeculativeTokens);
      const int m = propose_ngram_draft(t.data(), len, cfg, k, a);
      const int mi = propose_ngram_draft(t.data(), len, cfg, k, b, index);
      lookups++;
      found += m > 0;
      if (m != mi || !std::equal(a, a + m, b)) {
        if (mismatches++ == 0)
          first = "sequence " + std::to_string(s) + " length " + std::to_string(len) + " k " + std::to_string(k) + ": scan " +
                  std::to_string(m) + " tokens, index " + std::to_string(mi);
      }
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("lookups", double(lookups));
  out.Set("found", double(found));
  out.Set("mismatches", double(mismatches));
  out.Set("first", first);
  return out;
}

Napi::Value BenchNgramDraft(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int len = info[0].As<Napi::Number>().Int32Value(), reps = info[1].As<Napi::Number>().Int32Value();
  if (len < 2 || reps < 1) {
    Napi::TypeError::New(env, "benchNgramDraft(length >= 2, reps >= 1)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<int32_t> t(static_cast<size_t>(len));
  for (int i = 0; i < len; i++) t[size_t(i)] = i;  // no repeats: every lookup fails
  const NgramDraftConfig cfg{4, 2, 4};
  int32_t out[kMaxSpeculativeTokens];
  NgramIndex index;
  index.extend(t.data(), len);
  auto time_us = [&](auto&& propose) {
    int got = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; r++) got += propose();
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
    return got == 0 ? us : -1.0;
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("scanUs", time_us([&] { return propose_ngram_draft(t.data(), len, cfg, 4, out); }));
  o.Set("indexUs", time_us([&] { return propose_ngram_draft(t.data(), len, cfg, 4, out, index); }));
  return o;
}

}  // namespace grpst::addon
