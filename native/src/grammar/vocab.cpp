#include "grammar/vocab.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "grpst/common.h"

namespace grpst::grammar {

Vocabulary::Vocabulary(const uint8_t* data, const uint32_t* offsets, int size, const std::vector<int32_t>& added)
    : size_(size) {
  if (size <= 0) throw Error("vocabulary: no tokens");
  for (int i = 0; i < size; i++)
    if (offsets[i + 1] < offsets[i]) throw Error("vocabulary: token offsets must not decrease");
  data_.assign(data, data + offsets[size]);
  offsets_.assign(offsets, offsets + size + 1);
  added_.assign(size_t(size), 0);
  for (int32_t id : added) {
    if (id < 0 || id >= size) throw Error("vocabulary: added token id " + std::to_string(id) + " out of range");
    added_[size_t(id)] = 1;
  }

  std::vector<int32_t> ids;
  for (int32_t id = 0; id < size; id++) {
    if (added_[size_t(id)] || length(id) == 0) continue;
    if (length(id) > 255) throw Error("vocabulary: token " + std::to_string(id) + " is longer than 255 bytes");
    ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    const int la = length(a), lb = length(b);
    const int c = std::memcmp(bytes(a), bytes(b), size_t(std::min(la, lb)));
    return c != 0 ? c < 0 : (la != lb ? la < lb : a < b);
  });

  // Sorted byte strings give the trie in preorder: each token adds the nodes past the prefix it
  // shares with the previous one. `path[d]` is the node at depth d on the current path.
  trie_byte_.push_back(0);
  trie_depth_.push_back(0);
  trie_token_.push_back(-1);
  trie_skip_.push_back(0);
  std::vector<int32_t> path = {0};
  int32_t prev = -1;
  auto close_below = [&](size_t depth) {  // nodes deeper than `depth` on the path end their subtree here
    while (path.size() > depth + 1) {
      trie_skip_[size_t(path.back())] = int32_t(trie_byte_.size());
      path.pop_back();
    }
  };
  for (int32_t id : ids) {
    const int len = length(id);
    int common = 0;
    if (prev >= 0) {
      const int lp = length(prev);
      while (common < std::min(len, lp) && bytes(prev)[common] == bytes(id)[common]) common++;
    }
    if (prev >= 0 && common == len && common == length(prev)) {
      duplicates_.push_back({trie_token_[size_t(path.back())], id});  // same bytes as the previous token
      continue;
    }
    close_below(size_t(common));
    for (int d = common; d < len; d++) {
      trie_byte_.push_back(bytes(id)[d]);
      trie_depth_.push_back(uint8_t(d + 1));
      trie_token_.push_back(-1);
      trie_skip_.push_back(0);
      path.push_back(int32_t(trie_byte_.size()) - 1);
    }
    trie_token_[size_t(path.back())] = id;
    max_depth_ = std::max(max_depth_, len);
    prev = id;
  }
  close_below(0);
  trie_skip_[0] = int32_t(trie_byte_.size());
}

}  // namespace grpst::grammar
