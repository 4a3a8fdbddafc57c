// Paged KV cache: a pool of fixed-size blocks (block_size token slots each) shared by all sequences, and a block
// table per sequence mapping its logical blocks (positions [i * block_size, (i + 1) * block_size)) to physical
// blocks. Storage per layer is one K and one V tensor [row, n_blocks * block_size] in backend memory (F16 or F32),
// on that layer's backend (a model split over a GPU and the CPU keeps each layer's K/V where the layer runs).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"

namespace rf::kv {

// Free-list allocator of block ids [0, n_blocks).
class BlockPool {
 public:
  explicit BlockPool(int32_t n_blocks);
  int32_t n_blocks() const { return n_blocks_; }
  int32_t n_free() const { return static_cast<int32_t>(free_.size()); }
  // A free block id, or -1 when none is left.
  int32_t allocate();
  void release(int32_t block);  // block must be allocated

 private:
  int32_t n_blocks_;
  std::vector<int32_t> free_;    // stack of free ids (lowest id on top)
  std::vector<uint8_t> in_use_;  // [n_blocks]
};

struct KvShape {
  int n_layer = 0;
  int64_t k_row = 0;  // n_head_kv * head_dim_k
  int64_t v_row = 0;  // n_head_kv * head_dim_v
  // [n_layer] the backend each layer's K/V live on (Model::kv_shape fills it); empty: all on create()'s backend.
  std::vector<backend::Backend*> layer_backends;
};

// Bytes of K/V storage per token slot and layer for `type` (F16 or F32).
inline size_t kv_bytes_per_slot(const KvShape& shape, quant::Type type) {
  return static_cast<size_t>(shape.k_row + shape.v_row) * (type == quant::Type::F32 ? 4 : 2);
}

struct KvOptions {
  int32_t n_slots = 2048;     // total token slots (rounded up to whole blocks)
  int32_t block_size = 16;    // tokens per block
  quant::Type type = quant::Type::F16;  // F16 (as llama.cpp stores K/V) or F32
};

class KvCache {
 public:
  // Layer l's K/V go to shape.layer_backends[l] when given, else to `be`. An error when a backend cannot provide
  // the memory.
  static Expected<std::unique_ptr<KvCache>> create(backend::Backend& be, const KvShape& shape,
                                                   const KvOptions& options);

  int32_t block_size() const { return block_size_; }
  int32_t n_blocks() const { return pool_.n_blocks(); }
  int32_t n_free_blocks() const { return pool_.n_free(); }
  quant::Type type() const { return type_; }
  backend::Tensor k(int layer) const { return k_[static_cast<size_t>(layer)]; }  // [k_row, n_slots]
  backend::Tensor v(int layer) const { return v_[static_cast<size_t>(layer)]; }  // [v_row, n_slots]

  // Sequences: ids are small integers reused after release.
  int32_t add_sequence();
  bool has_sequence(int32_t seq) const;
  // Ensures blocks for positions [0, length + n_new); error (and no change) when the pool runs out.
  Status reserve(int32_t seq, int32_t n_new);
  // Marks n tokens as written (after a forward pass). reserve() must have covered them.
  void advance(int32_t seq, int32_t n);
  // Drops the tokens at positions >= new_length (keeps their blocks reserved only if still needed).
  void truncate(int32_t seq, int32_t new_length);
  void release_sequence(int32_t seq);
  int32_t length(int32_t seq) const;
  const std::vector<int32_t>& block_table(int32_t seq) const;

 private:
  KvCache(int32_t n_blocks, int32_t block_size, quant::Type type) : pool_(n_blocks), block_size_(block_size), type_(type) {}

  struct Sequence {
    bool live = false;
    int32_t length = 0;
    std::vector<int32_t> blocks;
  };
  BlockPool pool_;
  int32_t block_size_;
  quant::Type type_;
  std::vector<std::unique_ptr<backend::Buffer>> buffers_;
  std::vector<backend::Tensor> k_, v_;  // per layer
  std::vector<Sequence> seqs_;
};

}  // namespace rf::kv
