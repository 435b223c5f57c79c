#include "grpst/block_manager.h"

#include "grpst/common.h"

namespace grpst {

namespace {
inline uint64_t mix64(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}
}  // namespace

BlockManager::BlockManager(int num_blocks, int block_size, bool prefix_caching)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      prefix_caching_(prefix_caching),
      refcount_(num_blocks, 0),
      registered_(num_blocks, false),
      info_(num_blocks),
      evictable_pos_(num_blocks),
      in_evictable_(num_blocks, false) {
  if (num_blocks <= 0 || block_size <= 0) throw Error("KV cache needs at least one block of at least one token");
  free_.reserve(num_blocks);
  // Low ids are handed out first.
  for (int i = num_blocks - 1; i >= 0; i--) free_.push_back(i);
}

uint64_t BlockManager::hash_block(uint64_t parent, const int32_t* tokens, int n) {
  uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ull);
  for (int i = 0; i < n; i++) h = mix64(h ^ (uint64_t(uint32_t(tokens[i])) + 0x9e3779b97f4a7c15ull * uint64_t(i + 1)));
  return h;
}

int BlockManager::match_prefix(const int32_t* tokens, int n, int max_blocks, std::vector<int32_t>& blocks,
                               std::vector<uint64_t>& hashes, uint64_t root) {
  if (!prefix_caching_) return 0;
  uint64_t parent = root;
  int matched = 0;
  for (int b = 0; b < max_blocks && (b + 1) * block_size_ <= n; b++) {
    const int32_t* t = tokens + b * block_size_;
    const uint64_t h = hash_block(parent, t, block_size_);
    auto it = by_hash_.find(h);
    if (it == by_hash_.end()) break;
    const int32_t blk = it->second;
    const Cached& c = info_[blk];
    if (c.parent != parent || !std::equal(c.tokens.begin(), c.tokens.end(), t)) break;
    if (in_evictable_[blk]) {
      evictable_.erase(evictable_pos_[blk]);
      in_evictable_[blk] = false;
    }
    refcount_[blk]++;
    blocks.push_back(blk);
    hashes.push_back(h);
    parent = h;
    matched++;
  }
  return matched;
}

int32_t BlockManager::allocate() {
  int32_t blk;
  if (!free_.empty()) {
    blk = free_.back();
    free_.pop_back();
  } else if (!evictable_.empty()) {
    blk = evictable_.front();
    evictable_.pop_front();
    in_evictable_[blk] = false;
    by_hash_.erase(info_[blk].hash);
    registered_[blk] = false;
    info_[blk] = Cached{};
  } else {
    return -1;
  }
  refcount_[blk] = 1;
  return blk;
}

void BlockManager::release(int32_t blk) {
  if (blk < 0 || blk >= num_blocks_ || refcount_[blk] <= 0) throw Error("KV block released twice");
  if (--refcount_[blk] > 0) return;
  if (registered_[blk]) {
    evictable_.push_back(blk);
    evictable_pos_[blk] = std::prev(evictable_.end());
    in_evictable_[blk] = true;
  } else {
    free_.push_back(blk);
  }
}

uint64_t BlockManager::register_full(int32_t blk, uint64_t parent, const int32_t* tokens) {
  const uint64_t h = hash_block(parent, tokens, block_size_);
  if (!prefix_caching_ || registered_[blk]) return h;
  if (by_hash_.count(h)) return h;
  by_hash_[h] = blk;
  registered_[blk] = true;
  info_[blk] = Cached{h, std::vector<int32_t>(tokens, tokens + block_size_), parent};
  return h;
}

}  // namespace grpst
