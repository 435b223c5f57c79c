#include "grammar/grammar.h"

#include <algorithm>
#include <limits>
#include <string>

#include "grpst/common.h"

namespace grpst::grammar {

namespace {

constexpr int64_t kInf = std::numeric_limits<int64_t>::max() / 4;

/** Reads consecutive int32 fields with a bounds check on every read. */
class Reader {
 public:
  Reader(const int32_t* data, size_t len) : data_(data), len_(len) {}
  int32_t next(const char* what) {
    if (pos_ >= len_) throw Error(std::string("grammar: data ends before ") + what);
    return data_[pos_++];
  }
  bool done() const { return pos_ == len_; }

 private:
  const int32_t* data_;
  size_t len_;
  size_t pos_ = 0;
};

}  // namespace

Grammar Grammar::parse(const int32_t* data, size_t len) {
  Reader r(data, len);
  if (r.next("the header") != kMagic) throw Error("grammar: not a grammar (bad magic number)");
  const int32_t num_nodes = r.next("the node count");
  const int32_t root = r.next("the root");
  const int32_t num_specials = r.next("the special count");
  const int32_t num_edges = r.next("the edge count");
  const int32_t num_calls = r.next("the call count");
  if (num_nodes <= 0 || num_nodes > (1 << 24)) throw Error("grammar: node count out of range");
  if (num_specials < 0 || num_specials > 4096) throw Error("grammar: special token count out of range");
  if (num_edges < 0 || num_calls < 0 || int64_t(num_edges) * 4 + int64_t(num_calls) * 3 > int64_t(len))
    throw Error("grammar: edge counts do not match the data");
  if (root < 0 || root >= num_nodes) throw Error("grammar: root node out of range");
  Grammar g;
  g.root_ = root;
  for (int32_t i = 0; i < num_specials; i++) g.specials_.push_back(r.next("the special tokens"));
  const int32_t num_symbols = kByteSymbols + num_specials;
  auto node = [&](int32_t v, const char* what) {
    if (v < 0 || v >= num_nodes) throw Error(std::string("grammar: ") + what + " node " + std::to_string(v) + " out of range");
    return v;
  };
  std::vector<std::pair<int32_t, SymbolEdge>> edges;
  edges.reserve(size_t(num_edges));
  for (int32_t i = 0; i < num_edges; i++) {
    const int32_t from = node(r.next("the edges"), "edge source");
    SymbolEdge e;
    e.lo = r.next("the edges");
    e.hi = r.next("the edges");
    e.to = node(r.next("the edges"), "edge target");
    if (e.lo < 0 || e.hi < e.lo || e.hi >= num_symbols) throw Error("grammar: edge symbol range out of range");
    edges.push_back({from, e});
  }
  std::vector<std::pair<int32_t, CallEdge>> calls;
  calls.reserve(size_t(num_calls));
  for (int32_t i = 0; i < num_calls; i++) {
    const int32_t from = node(r.next("the calls"), "call source");
    CallEdge c;
    c.callee = node(r.next("the calls"), "callee");
    c.return_to = node(r.next("the calls"), "return");
    calls.push_back({from, c});
  }
  g.flags_.resize(size_t(num_nodes));
  for (int32_t i = 0; i < num_nodes; i++) g.flags_[size_t(i)] = uint8_t(r.next("the node flags"));
  if (!r.done()) throw Error("grammar: trailing data after the node flags");

  auto by_source = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(edges.begin(), edges.end(), by_source);
  std::stable_sort(calls.begin(), calls.end(), by_source);
  g.edge_begin_.assign(size_t(num_nodes) + 1, 0);
  g.call_begin_.assign(size_t(num_nodes) + 1, 0);
  for (auto& e : edges) {
    g.edge_begin_[size_t(e.first) + 1]++;
    g.edges_.push_back(e.second);
  }
  for (auto& c : calls) {
    g.call_begin_[size_t(c.first) + 1]++;
    g.calls_.push_back(c.second);
  }
  for (int32_t i = 0; i < num_nodes; i++) {
    g.edge_begin_[size_t(i) + 1] += g.edge_begin_[size_t(i)];
    g.call_begin_[size_t(i) + 1] += g.call_begin_[size_t(i)];
  }
  g.compute_distances();
  return g;
}

void Grammar::compute_distances() {
  const int32_t n = num_nodes();
  dist_.assign(size_t(n), kInf);
  for (int32_t i = 0; i < n; i++)
    if (accepts(i)) dist_[size_t(i)] = 0;
  // Relax until nothing changes. Sweeping in reverse order converges in a few passes because
  // the compiler numbers nodes roughly in the order the output visits them.
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t i = n - 1; i >= 0; i--) {
      int64_t best = dist_[size_t(i)];
      for (const SymbolEdge* e = edges_begin(i); e != edges_end(i); ++e) best = std::min(best, 1 + dist_[size_t(e->to)]);
      for (const CallEdge* c = calls_begin(i); c != calls_end(i); ++c)
        best = std::min(best, dist_[size_t(c->callee)] + dist_[size_t(c->return_to)]);
      if (best < dist_[size_t(i)]) {
        dist_[size_t(i)] = best;
        changed = true;
      }
    }
  }
  for (int32_t i = 0; i < n; i++)
    if (dist_[size_t(i)] >= kInf)
      throw Error("grammar: node " + std::to_string(i) + " cannot reach the end of its rule (a dead end)");
}

}  // namespace grpst::grammar
