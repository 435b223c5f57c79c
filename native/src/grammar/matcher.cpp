#include "grammar/matcher.h"

#include <algorithm>
#include <limits>
#include <string>

#include "grpst/common.h"

namespace grpst::grammar {

namespace {

// Safety limits: grammars from the compiler stay far below them (recursion is unrolled to a
// fixed depth, so stacks are bounded); a grammar that reaches one fails its request.
constexpr size_t kMaxStates = size_t(1) << 20;
constexpr size_t kMaxStacks = size_t(1) << 22;
constexpr int32_t kMaxStackDepth = 1 << 14;
// Cached masks beyond this are dropped and recomputed on demand.
constexpr int64_t kMaxMaskBytes = int64_t(128) << 20;
// Transition rows of one matcher; a grammar that needs more fails its request.
constexpr int64_t kMaxRowBytes = int64_t(256) << 20;

}  // namespace

size_t Matcher::KeyHash::operator()(const std::vector<int32_t>& v) const {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ v.size();
  for (int32_t x : v) {
    h ^= uint64_t(uint32_t(x)) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  }
  return size_t(h);
}

Matcher::Matcher(std::shared_ptr<const Vocabulary> vocab, Grammar grammar)
    : vocab_(std::move(vocab)), grammar_(std::move(grammar)) {
  for (int32_t t : grammar_.specials())
    if (!vocab_->is_added(t))
      throw Error("grammar: special symbol token " + std::to_string(t) + " is not an added token of the vocabulary");
  walk_states_.assign(size_t(vocab_->max_depth()) + 1, kDead);
  bool complete = false;
  scratch_.clear();
  next_visit_mark();
  closure(intern_stack(grammar_.root(), -1), complete);
  initial_ = intern_state(scratch_, complete);
  if (initial_ == kDead) throw Error("grammar: the root rule matches nothing");
}

void Matcher::next_visit_mark() {
  if (++visit_mark_ == 0) {  // wrapped: old marks could look current
    std::fill(visited_.begin(), visited_.end(), 0u);
    visit_mark_ = 1;
  }
}

int32_t Matcher::intern_stack(int32_t node, int32_t parent) {
  const uint64_t key = (uint64_t(uint32_t(node)) << 32) | uint32_t(parent + 1);
  auto it = stack_ids_.find(key);
  if (it != stack_ids_.end()) return it->second;
  if (stacks_.size() >= kMaxStacks) throw Error("grammar: the matcher outgrew its stack limit");
  Stack s;
  s.node = node;
  s.parent = parent;
  s.dist = grammar_.distance_to_rule_end(node) + (parent >= 0 ? stacks_[size_t(parent)].dist : 0);
  s.depth = parent >= 0 ? stacks_[size_t(parent)].depth + 1 : 1;
  if (s.depth > kMaxStackDepth) throw Error("grammar: rules nest deeper than " + std::to_string(kMaxStackDepth) + " (left recursion?)");
  const int32_t id = int32_t(stacks_.size());
  stacks_.push_back(s);
  visited_.push_back(0);
  stack_ids_.emplace(key, id);
  return id;
}

int32_t Matcher::intern_state(std::vector<int32_t>& stacks, bool complete) {
  if (stacks.empty() && !complete) return kDead;
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  stacks.push_back(complete ? 1 : 0);  // the key: stacks then the completion flag
  auto it = state_ids_.find(stacks);
  if (it != state_ids_.end()) {
    stacks.pop_back();
    return it->second;
  }
  if (states_.size() >= kMaxStates) throw Error("grammar: the matcher outgrew its state limit");
  const int32_t id = int32_t(states_.size());
  state_ids_.emplace(stacks, id);
  stacks.pop_back();
  State st;
  st.stacks = stacks;
  st.complete = complete;
  st.dist = complete ? 0 : INT64_MAX;
  st.first_symbol = grammar_.num_symbols();
  for (int32_t s : stacks) {
    const int32_t node = stacks_[size_t(s)].node;
    st.dist = std::min(st.dist, stacks_[size_t(s)].dist);
    if (grammar_.free_text(node)) st.free_text = true;
    for (const SymbolEdge* e = grammar_.edges_begin(node); e != grammar_.edges_end(node); ++e) {
      st.first_symbol = std::min(st.first_symbol, e->lo);
      st.last_symbol = std::max(st.last_symbol, e->hi);
    }
  }
  states_.push_back(std::move(st));
  rows_.push_back(nullptr);
  return id;
}

void Matcher::closure(int32_t start, bool& complete) {
  work_.clear();
  work_.push_back(start);
  while (!work_.empty()) {
    const int32_t s = work_.back();
    work_.pop_back();
    if (visited_[size_t(s)] == visit_mark_) continue;
    visited_[size_t(s)] = visit_mark_;
    const int32_t node = stacks_[size_t(s)].node, parent = stacks_[size_t(s)].parent;
    if (grammar_.has_symbol_edges(node)) scratch_.push_back(s);
    for (const CallEdge* c = grammar_.calls_begin(node); c != grammar_.calls_end(node); ++c) {
      const int32_t ret = intern_stack(c->return_to, parent);
      work_.push_back(intern_stack(c->callee, ret));
    }
    if (grammar_.accepts(node)) {
      if (parent < 0)
        complete = true;
      else
        work_.push_back(parent);
    }
  }
}

int32_t* Matcher::row(int32_t state) {
  auto& r = rows_[size_t(state)];
  if (!r) {
    const State& st = states_[size_t(state)];
    const int n = std::max(0, st.last_symbol - st.first_symbol + 1);
    if (row_bytes_ > kMaxRowBytes) throw Error("grammar: the matcher outgrew its memory limit");
    row_bytes_ += int64_t(n) * 4;
    r.reset(new int32_t[size_t(std::max(n, 1))]);
    std::fill(r.get(), r.get() + n, kUnknown);
  }
  return r.get();
}

int32_t Matcher::advance(int32_t state, int32_t symbol) {
  if (state < 0 || symbol < 0 || symbol >= grammar_.num_symbols()) return kDead;
  const int32_t first = states_[size_t(state)].first_symbol;
  if (symbol < first || symbol > states_[size_t(state)].last_symbol) return kDead;
  int32_t* r = row(state);
  if (r[symbol - first] != kUnknown) return r[symbol - first];
  transitions_++;
  scratch_.clear();
  next_visit_mark();
  bool complete = false;
  // Copy: closure() may grow stacks_, and the state's own list must not move under the loop.
  const std::vector<int32_t> from = states_[size_t(state)].stacks;
  for (int32_t s : from) {
    const int32_t node = stacks_[size_t(s)].node, parent = stacks_[size_t(s)].parent;
    for (const SymbolEdge* e = grammar_.edges_begin(node); e != grammar_.edges_end(node); ++e)
      if (e->lo <= symbol && symbol <= e->hi) closure(intern_stack(e->to, parent), complete);
  }
  const int32_t next = intern_state(scratch_, complete);
  rows_[size_t(state)][symbol - first] = next;
  return next;
}

int32_t Matcher::advance_token(int32_t state, int32_t token) {
  if (state < 0 || token < 0 || token >= vocab_->size()) return kDead;
  if (vocab_->is_added(token)) {
    const auto& sp = grammar_.specials();
    for (size_t k = 0; k < sp.size(); k++)
      if (sp[k] == token) return advance(state, kByteSymbols + int32_t(k));
    return kDead;
  }
  const uint8_t* b = vocab_->bytes(token);
  const int n = vocab_->length(token);
  if (n == 0) return kDead;
  for (int i = 0; i < n && state >= 0; i++) state = step(state, b[i]);
  return state;
}

template <class F>
void Matcher::walk(int32_t state, F&& on_token) {
  const Vocabulary& v = *vocab_;
  const uint8_t* byte = v.trie_byte();
  const uint8_t* depth = v.trie_depth();
  const int32_t* token = v.trie_token();
  const int32_t* skip = v.trie_skip();
  const int32_t n = v.trie_size();
  int32_t* at = walk_states_.data();  // at[d]: the state after the first d bytes of the current path
  at[0] = state;
  for (int32_t i = 1; i < n;) {
    const int32_t next = step(at[depth[i] - 1], byte[i]);
    if (next < 0) {
      i = skip[i];  // no token below this prefix can match
      continue;
    }
    if (token[i] >= 0) on_token(token[i], next);
    at[depth[i]] = next;
    i++;
  }
  for (auto [first, dup] : v.duplicates()) {
    const int32_t next = advance_token(state, first);
    if (next >= 0) on_token(dup, next);
  }
  const auto& sp = grammar_.specials();
  for (size_t k = 0; k < sp.size(); k++) {
    const int32_t next = step(state, kByteSymbols + int32_t(k));
    if (next >= 0) on_token(sp[k], next);
  }
}

const TokenMask& Matcher::mask(int32_t state) {
  State* st = &states_[size_t(state)];
  if (st->mask) {
    mask_hits_++;
    return *st->mask;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (mask_bytes_ > kMaxMaskBytes) {
    for (State& s : states_) s.mask.reset();
    mask_bytes_ = 0;
    cached_masks_ = 0;
  }
  const int vocab = vocab_->size();
  const size_t words = (size_t(vocab) + 31) / 32;
  auto m = std::make_unique<TokenMask>();
  m->bits.assign(words, 0u);
  m->min_after = INT64_MAX;
  m->max_after = 0;
  walk(state, [&](int32_t tok, int32_t next) {
    const uint32_t bit = 1u << (tok & 31);
    uint32_t& w = m->bits[size_t(tok) >> 5];
    if (!(w & bit)) m->count++;
    w |= bit;
    const int64_t d = states_[size_t(next)].dist;
    m->min_after = std::min(m->min_after, d);
    m->max_after = std::max(m->max_after, d);
  });
  if (m->count == 0) m->min_after = 0;
  // Sparse masks (most states outside strings allow a few hundred tokens) keep only the ids.
  if (size_t(m->count) < words) {
    for (size_t w = 0; w < words; w++)
      for (uint32_t x = m->bits[w]; x; x &= x - 1) m->ids.push_back(int32_t(w * 32 + size_t(__builtin_ctz(x))));
    m->bits.clear();
    m->bits.shrink_to_fit();
  } else {
    m->dense = true;
  }
  mask_bytes_ += int64_t(m->bits.size() * 4 + m->ids.size() * 4);
  cached_masks_++;
  masks_computed_++;
  st = &states_[size_t(state)];  // the walk may have added states
  st->mask = std::move(m);
  mask_time_ += std::chrono::steady_clock::now() - t0;
  return *st->mask;
}

void Matcher::fill_within(int32_t state, int64_t max_after, uint32_t* allowed, int vocab) {
  const auto t0 = std::chrono::steady_clock::now();
  walk(state, [&](int32_t tok, int32_t next) {
    if (states_[size_t(next)].dist <= max_after) set_bit(allowed, tok, vocab);
  });
  mask_time_ += std::chrono::steady_clock::now() - t0;
}

void Matcher::fill_free_text_exits(int32_t state, uint32_t* allowed, int vocab) {
  const auto& sp = grammar_.specials();
  for (size_t k = 0; k < sp.size(); k++) {
    const int32_t next = step(state, kByteSymbols + int32_t(k));
    if (next >= 0 && !states_[size_t(next)].free_text) set_bit(allowed, sp[k], vocab);
  }
}

void mask_logits(const uint32_t* allowed, float* logits, int vocab) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int full = vocab >> 5;  // words whose 32 tokens are all inside the vocabulary
  for (int w = 0; w < full; w++) {
    const uint32_t bits = allowed[w];
    if (bits == ~0u) continue;
    float* l = logits + size_t(w) * 32;
    if (bits == 0u) {
      std::fill(l, l + 32, kNegInf);
      continue;
    }
    for (int b = 0; b < 32; b++)
      if (!(bits >> b & 1u)) l[b] = kNegInf;
  }
  for (int t = full * 32; t < vocab; t++)
    if (!(allowed[size_t(t) >> 5] >> (t & 31) & 1u)) logits[t] = kNegInf;
}

MatcherStats Matcher::stats() const {
  MatcherStats s;
  s.states = int64_t(states_.size());
  s.stacks = int64_t(stacks_.size());
  s.cached_masks = cached_masks_;
  s.mask_bytes = mask_bytes_;
  s.masks_computed = masks_computed_;
  s.mask_hits = mask_hits_;
  s.transitions = transitions_;
  s.mask_seconds = std::chrono::duration<double>(mask_time_).count();
  s.fills = fills_;
  s.fill_seconds = std::chrono::duration<double>(fill_time_).count();
  return s;
}

}  // namespace grpst::grammar
