// The paged KV cache's bookkeeping (device-neutral): a pool of fixed-size blocks with
// reference counts, plus the prefix cache: every full block that has been computed is
// registered under a hash chained from its parent's hash and its tokens, so a new sequence
// that starts with the same tokens reuses those blocks instead of recomputing them. Cached
// blocks nobody references stay reusable until the pool needs them (least recently used first).
#pragma once
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace grpst {

class BlockManager {
 public:
  BlockManager(int num_blocks, int block_size, bool prefix_caching);

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  /** Blocks that can be handed out now (free ones plus cached ones nobody references). */
  int num_available() const { return int(free_.size() + evictable_.size()); }
  /** Blocks referenced by at least one sequence. */
  int num_used() const { return num_blocks_ - num_available(); }

  /**
   * Longest run of cached full blocks matching tokens[0, n), at most max_blocks of them; takes
   * a reference on each and appends them (and their hashes) to the outputs. Returns the count.
   * `root` is the hash chain's start (a request's cache salt; 0 for none).
   */
  int match_prefix(const int32_t* tokens, int n, int max_blocks, std::vector<int32_t>& blocks,
                   std::vector<uint64_t>& hashes, uint64_t root = 0);
  /** A fresh block (refcount 1), evicting the least recently used cached one if needed; -1 if none. */
  int32_t allocate();
  /** Drops one reference; an unreferenced block stays cached (if registered) or becomes free. */
  void release(int32_t block);
  /**
   * Registers a block that now holds `block_size` computed tokens whose prefix hash is `parent`.
   * Returns the block's hash (to chain the next block). Same content already cached elsewhere:
   * this block stays unregistered.
   */
  uint64_t register_full(int32_t block, uint64_t parent, const int32_t* tokens);

  static uint64_t hash_block(uint64_t parent, const int32_t* tokens, int n);

 private:
  struct Cached {
    uint64_t hash;
    std::vector<int32_t> tokens;  // compared on lookup: a hash collision never reuses wrong KV
    uint64_t parent;
  };
  int num_blocks_, block_size_;
  bool prefix_caching_;
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_;
  std::vector<bool> registered_;
  std::vector<Cached> info_;                                    // per block, when registered
  std::unordered_map<uint64_t, int32_t> by_hash_;
  std::list<int32_t> evictable_;                                // LRU order: front = oldest
  std::vector<std::list<int32_t>::iterator> evictable_pos_;
  std::vector<bool> in_evictable_;
};

}  // namespace grpst
