#include "runtime/scheduler_blocks.h"

#include <algorithm>

#include "core/check.h"

namespace rf::runtime {

BlockManager::BlockManager(int32_t n_blocks, int32_t block_size, bool prefix_cache)
    : block_size_(block_size), prefix_cache_(prefix_cache), blocks_(static_cast<size_t>(n_blocks)) {
  RF_CHECK(n_blocks > 0 && block_size > 0);
  free_.reserve(static_cast<size_t>(n_blocks));
  for (int32_t i = n_blocks - 1; i >= 0; --i) free_.push_back(i);
}

uint64_t BlockManager::key_of(uint64_t parent_serial, std::span<const int32_t> tokens) const {
  // FNV-1a over the parent serial and the token ids; exactness is checked on lookup.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent_serial);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  return h;
}

int32_t BlockManager::allocate() {
  int32_t b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    blocks_[static_cast<size_t>(b)].in_lru = false;
    unregister(b);
  } else {
    return -1;
  }
  blocks_[static_cast<size_t>(b)].refs = 1;
  return b;
}

void BlockManager::retain(int32_t block) {
  Block& b = blocks_[static_cast<size_t>(block)];
  if (b.refs == 0) {
    RF_CHECK(b.in_lru);  // only cached blocks can be revived
    lru_.erase(b.lru_pos);
    b.in_lru = false;
  }
  ++b.refs;
}

void BlockManager::release(int32_t block) {
  RF_CHECK(block >= 0 && block < n_blocks());
  Block& b = blocks_[static_cast<size_t>(block)];
  RF_CHECK(b.refs > 0);
  if (--b.refs > 0) return;
  if (b.serial != 0) {
    b.lru_pos = lru_.insert(lru_.end(), block);
    b.in_lru = true;
  } else {
    free_.push_back(block);
  }
}

void BlockManager::unregister(int32_t block) {
  Block& b = blocks_[static_cast<size_t>(block)];
  if (b.serial == 0) return;
  auto [lo, hi] = index_.equal_range(b.key);
  for (auto it = lo; it != hi; ++it) {
    if (it->second == block) {
      index_.erase(it);
      break;
    }
  }
  b.serial = b.parent_serial = b.key = 0;
  b.tokens.clear();
}

std::vector<int32_t> BlockManager::match_prefix(std::span<const int32_t> tokens, int32_t max_blocks) {
  std::vector<int32_t> out;
  if (!prefix_cache_) return out;
  const auto bs = static_cast<size_t>(block_size_);
  uint64_t parent = 0;
  for (int32_t i = 0; i < max_blocks && (static_cast<size_t>(i) + 1) * bs <= tokens.size(); ++i) {
    const auto chunk = tokens.subspan(static_cast<size_t>(i) * bs, bs);
    const uint64_t key = key_of(parent, chunk);
    int32_t found = -1;
    auto [lo, hi] = index_.equal_range(key);
    for (auto it = lo; it != hi && found < 0; ++it) {
      const Block& b = blocks_[static_cast<size_t>(it->second)];
      if (b.parent_serial == parent && std::equal(chunk.begin(), chunk.end(), b.tokens.begin(), b.tokens.end())) {
        found = it->second;
      }
    }
    if (found < 0) break;
    retain(found);
    out.push_back(found);
    parent = blocks_[static_cast<size_t>(found)].serial;
  }
  return out;
}

int32_t BlockManager::register_block(std::span<const int32_t> table, int32_t index, std::span<const int32_t> tokens) {
  RF_CHECK(index >= 0 && static_cast<size_t>(index) < table.size());
  RF_CHECK(tokens.size() == static_cast<size_t>(block_size_));
  const int32_t block = table[static_cast<size_t>(index)];
  if (!prefix_cache_) return block;
  Block& b = blocks_[static_cast<size_t>(block)];
  if (b.serial != 0) return block;  // already registered (reused from the cache)
  uint64_t parent = 0;
  if (index > 0) {
    parent = blocks_[static_cast<size_t>(table[static_cast<size_t>(index) - 1])].serial;
    if (parent == 0) return block;
  }
  const uint64_t key = key_of(parent, tokens);
  auto [lo, hi] = index_.equal_range(key);
  for (auto it = lo; it != hi; ++it) {
    const Block& o = blocks_[static_cast<size_t>(it->second)];
    if (o.parent_serial == parent && std::equal(tokens.begin(), tokens.end(), o.tokens.begin(), o.tokens.end())) {
      retain(it->second);  // the same content is cached already: share it
      return it->second;
    }
  }
  b.serial = next_serial_++;
  b.parent_serial = parent;
  b.key = key;
  b.tokens.assign(tokens.begin(), tokens.end());
  index_.emplace(key, block);
  return block;
}

}  // namespace rf::runtime
