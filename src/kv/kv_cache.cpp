#include "kv/kv_cache.h"

#include <string>

#include "core/check.h"

namespace rf::kv {

BlockPool::BlockPool(int32_t n_blocks) : n_blocks_(n_blocks), in_use_(static_cast<size_t>(n_blocks), 0) {
  free_.reserve(static_cast<size_t>(n_blocks));
  for (int32_t i = n_blocks - 1; i >= 0; --i) free_.push_back(i);
}

int32_t BlockPool::allocate() {
  if (free_.empty()) return -1;
  const int32_t b = free_.back();
  free_.pop_back();
  in_use_[static_cast<size_t>(b)] = 1;
  return b;
}

void BlockPool::release(int32_t block) {
  RF_CHECK(block >= 0 && block < n_blocks_ && in_use_[static_cast<size_t>(block)]);
  in_use_[static_cast<size_t>(block)] = 0;
  free_.push_back(block);
}

Expected<std::unique_ptr<KvCache>> KvCache::create(backend::Backend& be, const KvShape& shape,
                                                   const KvOptions& options) {
  if (options.block_size <= 0 || options.n_slots <= 0) {
    return Status::error("kv: block size " + std::to_string(options.block_size) + " and slots " +
                         std::to_string(options.n_slots) + " must be positive");
  }
  if (options.type != quant::Type::F16 && options.type != quant::Type::F32) {
    return Status::error("kv: cache type " + std::string(quant::type_name(options.type)) + " not supported (F16, F32)");
  }
  const int32_t n_blocks = (options.n_slots + options.block_size - 1) / options.block_size;
  std::unique_ptr<KvCache> c(new KvCache(n_blocks, options.block_size, options.type));
  const int64_t n_slots = static_cast<int64_t>(n_blocks) * options.block_size;
  if (!shape.layer_backends.empty() && static_cast<int>(shape.layer_backends.size()) != shape.n_layer) {
    return Status::error("kv: " + std::to_string(shape.layer_backends.size()) + " layer backends for " +
                         std::to_string(shape.n_layer) + " layers");
  }
  const size_t elem = options.type == quant::Type::F16 ? 2 : 4;
  auto make = [&](backend::Backend& lbe, int layer, int64_t row, const char* what) -> Expected<backend::Tensor> {
    const size_t bytes = static_cast<size_t>(row * n_slots) * elem;
    auto buf = lbe.alloc(bytes);
    if (buf == nullptr) {
      return Status::error("kv: cannot allocate the " + std::string(what) + " cache of layer " +
                           std::to_string(layer) + " (" + std::to_string(bytes) + " bytes for " +
                           std::to_string(n_slots) + " tokens) on " + lbe.name() + ": " +
                           lbe.take_error().message());
    }
    const auto t = backend::make_tensor(buf->data(), options.type, row, n_slots);
    c->buffers_.push_back(std::move(buf));
    return t;
  };
  for (int l = 0; l < shape.n_layer; ++l) {
    backend::Backend& lbe = shape.layer_backends.empty() ? be : *shape.layer_backends[static_cast<size_t>(l)];
    auto k = make(lbe, l, shape.k_row, "K");
    if (!k) return k.status();
    auto v = make(lbe, l, shape.v_row, "V");
    if (!v) return v.status();
    c->k_.push_back(*k);
    c->v_.push_back(*v);
  }
  return c;
}

int32_t KvCache::add_sequence() {
  for (size_t i = 0; i < seqs_.size(); ++i) {
    if (!seqs_[i].live) {
      seqs_[i] = Sequence{true, 0, {}};
      return static_cast<int32_t>(i);
    }
  }
  seqs_.push_back(Sequence{true, 0, {}});
  return static_cast<int32_t>(seqs_.size() - 1);
}

bool KvCache::has_sequence(int32_t seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[static_cast<size_t>(seq)].live;
}

Status KvCache::reserve(int32_t seq, int32_t n_new) {
  RF_CHECK(has_sequence(seq) && n_new >= 0);
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  const int64_t need_tokens = static_cast<int64_t>(s.length) + n_new;
  const auto need_blocks = static_cast<size_t>((need_tokens + block_size_ - 1) / block_size_);
  if (need_blocks > s.blocks.size() && need_blocks - s.blocks.size() > static_cast<size_t>(pool_.n_free())) {
    return Status::error("kv: sequence " + std::to_string(seq) + " needs " + std::to_string(need_tokens) +
                         " token slots (" + std::to_string(need_blocks) + " blocks of " + std::to_string(block_size_) +
                         ") but only " + std::to_string(pool_.n_free()) + " free blocks remain of " +
                         std::to_string(pool_.n_blocks()));
  }
  while (s.blocks.size() < need_blocks) s.blocks.push_back(pool_.allocate());
  return ok_status();
}

void KvCache::advance(int32_t seq, int32_t n) {
  RF_CHECK(has_sequence(seq));
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  RF_CHECK(static_cast<int64_t>(s.length + n) <= static_cast<int64_t>(s.blocks.size()) * block_size_);
  s.length += n;
}

void KvCache::truncate(int32_t seq, int32_t new_length) {
  RF_CHECK(has_sequence(seq) && new_length >= 0);
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  if (new_length >= s.length) return;
  s.length = new_length;
  const auto keep = static_cast<size_t>((new_length + block_size_ - 1) / block_size_);
  while (s.blocks.size() > keep) {
    pool_.release(s.blocks.back());
    s.blocks.pop_back();
  }
}

void KvCache::release_sequence(int32_t seq) {
  RF_CHECK(has_sequence(seq));
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  for (int32_t b : s.blocks) pool_.release(b);
  s = Sequence{};
}

int32_t KvCache::length(int32_t seq) const {
  RF_CHECK(has_sequence(seq));
  return seqs_[static_cast<size_t>(seq)].length;
}

const std::vector<int32_t>& KvCache::block_table(int32_t seq) const {
  RF_CHECK(has_sequence(seq));
  return seqs_[static_cast<size_t>(seq)].blocks;
}

}  // namespace rf::kv
