// A loaded model: hyper-parameters, weights on a backend, and the forward pass (written once, against the
// Backend interface) over a batch of tokens from one or more sequences that share a paged KV cache.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "gguf/gguf.h"
#include "kv/kv_cache.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace rf::model {

class Model {
 public:
  // Opens a GGUF file and loads its weights through `be` (which must outlive the model).
  static Expected<std::unique_ptr<Model>> load(const std::string& path, backend::Backend& be);
  static Expected<std::unique_ptr<Model>> load(std::shared_ptr<gguf::File> file, backend::Backend& be);

  const HParams& hparams() const { return hp_; }
  const gguf::File& file() const { return *file_; }
  backend::Backend& backend() const { return be_; }
  kv::KvShape kv_shape() const;
  // Bytes of weight data one decode step reads (all weights; for MoE, only the used share of the experts).
  size_t weight_bytes_per_token() const;

  // Runs the batch: writes each token's K/V into `cache` (the batch's block tables must come from it) and stores
  // the logits of batch.output_rows in `logits` ([n_outputs][n_vocab], row-major).
  Status forward(backend::Batch batch, kv::KvCache& cache, std::vector<float>* logits);

 private:
  Model(std::shared_ptr<gguf::File> file, backend::Backend& be) : file_(std::move(file)), be_(be) {}
  void ensure_workspace(int64_t n_tokens, int64_t n_outputs);
  void attention_block(int il, const backend::DeviceBatch& db, kv::KvCache& cache, int64_t n);
  void ffn_block(int il, int64_t n);

  std::shared_ptr<gguf::File> file_;
  backend::Backend& be_;
  HParams hp_;
  Weights w_;
  struct Buffers {
    int64_t n_tokens = 0, n_outputs = 0;
    std::vector<std::unique_ptr<backend::Buffer>> owned;
    backend::Tensor x, xb, q, k, v, att, hb, hb2;        // per token rows
    backend::Tensor router, expert_ids, expert_w;         // MoE per token
    backend::Tensor eg, eu, ed;                           // MoE per (token, used expert)
    backend::Tensor xo, logits;                           // per output row
  } ws_;
};

}  // namespace rf::model
