// A compiled grammar as the matcher runs it: a recursive transition network over symbols, where
// symbols 0..255 are bytes and 256 + k is the k-th special (added) token of `specials`. Each
// rule is a small automaton; a call edge enters another rule and records where to continue
// when that rule ends (a node with kAccept). src/structured/ builds and serializes it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace grpst::grammar {

constexpr int32_t kByteSymbols = 256;
constexpr int32_t kMagic = 0x47524d31;  // "GRM1"

enum NodeFlag : uint8_t {
  kAccept = 1,    // the rule may end here (return to the caller, or finish at the root)
  kFreeText = 2,  // a free-text loop (the think block) whose length the constraint may bound
};

struct SymbolEdge {
  int32_t lo, hi;  // symbol range, inclusive
  int32_t to;
};

struct CallEdge {
  int32_t callee;     // start node of the called rule
  int32_t return_to;  // node of the caller where matching continues after the callee ends
};

class Grammar {
 public:
  /**
   * Parses the flat form written by src/structured/grammar-format.ts:
   *   [magic, numNodes, root, numSpecials, numEdges, numCalls,
   *    specials[numSpecials], edges[numEdges][from, lo, hi, to], calls[numCalls][from, callee, returnTo],
   *    flags[numNodes]]
   * Throws grpst::Error on malformed input or on a grammar with a dead end (a node from which
   * no complete output is reachable).
   */
  static Grammar parse(const int32_t* data, size_t len);

  int num_nodes() const { return int(flags_.size()); }
  int32_t root() const { return root_; }
  const std::vector<int32_t>& specials() const { return specials_; }
  int num_symbols() const { return kByteSymbols + int(specials_.size()); }

  bool accepts(int32_t node) const { return flags_[node] & kAccept; }
  bool free_text(int32_t node) const { return flags_[node] & kFreeText; }
  bool has_symbol_edges(int32_t node) const { return edge_begin_[node] != edge_begin_[node + 1]; }
  const SymbolEdge* edges_begin(int32_t node) const { return edges_.data() + edge_begin_[node]; }
  const SymbolEdge* edges_end(int32_t node) const { return edges_.data() + edge_begin_[node + 1]; }
  const CallEdge* calls_begin(int32_t node) const { return calls_.data() + call_begin_[node]; }
  const CallEdge* calls_end(int32_t node) const { return calls_.data() + call_begin_[node + 1]; }

  /** Fewest symbols from `node` to the end of its rule (calls count their callee's shortest output). */
  int64_t distance_to_rule_end(int32_t node) const { return dist_[node]; }

 private:
  void compute_distances();

  int32_t root_ = 0;
  std::vector<int32_t> specials_;
  std::vector<uint8_t> flags_;
  std::vector<SymbolEdge> edges_;      // grouped by source node
  std::vector<int32_t> edge_begin_;    // [num_nodes + 1]
  std::vector<CallEdge> calls_;        // grouped by source node
  std::vector<int32_t> call_begin_;    // [num_nodes + 1]
  std::vector<int64_t> dist_;          // [num_nodes]
};

}  // namespace grpst::grammar
