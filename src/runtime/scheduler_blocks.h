// KV block bookkeeping for the continuous-batching scheduler: reference-counted blocks of one pool, with a prefix
// cache. A full block (block_size tokens, all computed) can be registered under the exact token prefix it holds;
// a later sequence whose prompt starts with the same tokens reuses it instead of recomputing it. Unreferenced
// cached blocks stay valid until the pool needs them (least recently used evicted first).
//
// The storage itself is a kv::KvCache (the model reads/writes K/V through the block tables built here); this class
// only decides which physical block ids each sequence uses. Not thread-safe (the scheduler thread owns it).
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace rf::runtime {

class BlockManager {
 public:
  BlockManager(int32_t n_blocks, int32_t block_size, bool prefix_cache);

  int32_t n_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t block_size() const { return block_size_; }
  // Blocks an allocate() can still return (free + unreferenced cached).
  int32_t n_available() const { return static_cast<int32_t>(free_.size() + lru_.size()); }
  int32_t n_referenced() const { return n_blocks() - n_available(); }
  int32_t n_cached_idle() const { return static_cast<int32_t>(lru_.size()); }
  int32_t refcount(int32_t block) const { return blocks_[static_cast<size_t>(block)].refs; }

  // A block for new tokens (refcount 1), evicting the least recently used cached block when no free one is left;
  // -1 when every block is referenced.
  int32_t allocate();
  void retain(int32_t block);
  // Drops one reference; at zero a registered block stays cached (evictable), others return to the free list.
  void release(int32_t block);

  // The cached blocks holding tokens[0 .. k * block_size) for the largest k <= max_blocks (each retained once).
  std::vector<int32_t> match_prefix(std::span<const int32_t> tokens, int32_t max_blocks);
  // Registers `table[index]` as holding tokens[index * bs, (index + 1) * bs) after table[0 .. index) (which must
  // be registered already, or index == 0). Returns the block the table should hold from now on: table[index]
  // itself, or an identical block cached already (retained for the caller, who then releases its own copy).
  // Nothing is registered (table[index] returned) when the prefix cache is off or the parent is unregistered.
  int32_t register_block(std::span<const int32_t> table, int32_t index, std::span<const int32_t> tokens);
  bool is_registered(int32_t block) const { return blocks_[static_cast<size_t>(block)].serial != 0; }

 private:
  struct Block {
    int32_t refs = 0;
    uint64_t serial = 0;          // registration id, unique forever (0 = not registered)
    uint64_t parent_serial = 0;   // serial of the block before it in the prefix (0 for the first block)
    uint64_t key = 0;             // hash(parent_serial, tokens)
    std::vector<int32_t> tokens;  // [block_size] when registered
    std::list<int32_t>::iterator lru_pos;
    bool in_lru = false;
  };
  uint64_t key_of(uint64_t parent_serial, std::span<const int32_t> tokens) const;
  void unregister(int32_t block);

  int32_t block_size_;
  bool prefix_cache_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;                         // unregistered, unreferenced (stack: lowest id on top)
  std::list<int32_t> lru_;                            // registered, unreferenced: front = least recently used
  std::unordered_multimap<uint64_t, int32_t> index_;  // key -> registered block
  uint64_t next_serial_ = 1;
};

}  // namespace rf::runtime
