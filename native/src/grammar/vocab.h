// The tokenizer's vocabulary as constrained decoding needs it: the raw bytes of every token and
// a trie over the bytes of the ordinary (BPE) tokens, laid out in preorder so that computing a
// mask is one linear pass that skips whole subtrees the grammar rejects. Built once per
// tokenizer and shared by every compiled grammar.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace grpst::grammar {

class Vocabulary {
 public:
  /**
   * `data[offsets[id] .. offsets[id + 1])` are token id's bytes (offsets has size + 1 entries).
   * Added tokens (<|im_end|>, <think>, <tool_call>, ...) are never spelled by bytes: a grammar
   * names them as special symbols, so they stay out of the trie.
   */
  Vocabulary(const uint8_t* data, const uint32_t* offsets, int size, const std::vector<int32_t>& added);

  int size() const { return size_; }
  bool is_added(int32_t id) const { return id >= 0 && id < size_ && added_[size_t(id)]; }
  const uint8_t* bytes(int32_t id) const { return data_.data() + offsets_[size_t(id)]; }
  int length(int32_t id) const { return int(offsets_[size_t(id) + 1] - offsets_[size_t(id)]); }

  /** Trie nodes in preorder; node 0 is the root (no byte). */
  int trie_size() const { return int(trie_byte_.size()); }
  int max_depth() const { return max_depth_; }
  const uint8_t* trie_byte() const { return trie_byte_.data(); }
  const uint8_t* trie_depth() const { return trie_depth_.data(); }
  /** Token ending at the node, or -1. */
  const int32_t* trie_token() const { return trie_token_.data(); }
  /** Index just past the node's subtree. */
  const int32_t* trie_skip() const { return trie_skip_.data(); }
  /** (token in the trie, another token with the same bytes): the second is allowed with the first. */
  const std::vector<std::pair<int32_t, int32_t>>& duplicates() const { return duplicates_; }

 private:
  int size_;
  std::vector<uint8_t> data_;
  std::vector<uint32_t> offsets_;
  std::vector<uint8_t> added_;
  int max_depth_ = 0;
  std::vector<uint8_t> trie_byte_;
  std::vector<uint8_t> trie_depth_;
  std::vector<int32_t> trie_token_;
  std::vector<int32_t> trie_skip_;
  std::vector<std::pair<int32_t, int32_t>> duplicates_;
};

}  // namespace grpst::grammar
