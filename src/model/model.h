// A loaded model: hyper-parameters, weights on one or two backends, and the forward pass (written once, against the
// Backend interface) over a batch of tokens from one or more sequences that share a paged KV cache.
//
// Hybrid execution: a Placement puts the first n_first layers on one backend (e.g. the GPU) and the rest on
// another (e.g. the CPU). Each layer's weights, workspace and KV tensors live on that layer's backend; the hidden
// state crosses once per backend boundary (to_host, then to_device).
#pragma once

#include <functional>
#include <memory>
#include <span>
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

// Where the model runs: layers [0, n_first) on `first`, the others on `rest`. Token embeddings are looked up on
// layer 0's backend; the output norm and matrix run on `first` only when every layer does, else on `rest`.
// Backends must outlive the model, except `owned`, which the model keeps alive (e.g. the CPU half of a split).
// `fallback` (optional) makes the backend the whole model moves to when a lost device cannot be reset (see
// recover()): the CPU path, so that a server whose GPU is gone for good goes on serving, slower.
struct Placement {
  backend::Backend* first = nullptr;
  backend::Backend* rest = nullptr;  // required when n_first < n_layer
  int n_first = -1;                  // < 0 or >= n_layer: every layer (and the output) on `first`
  std::unique_ptr<backend::Backend> owned;
  std::function<std::unique_ptr<backend::Backend>()> fallback;
};

class Model {
 public:
  // Opens a GGUF file and loads its weights through `be` (which must outlive the model).
  static Expected<std::unique_ptr<Model>> load(const std::string& path, backend::Backend& be);
  static Expected<std::unique_ptr<Model>> load(std::shared_ptr<gguf::File> file, backend::Backend& be);
  // Loads the weights split over the placement's backends.
  static Expected<std::unique_ptr<Model>> load(std::shared_ptr<gguf::File> file, Placement placement);

  const HParams& hparams() const { return hp_; }
  const gguf::File& file() const { return *file_; }
  // The backend of layer 0 (the only one unless the model is split).
  backend::Backend& backend() const { return *sites_[static_cast<size_t>(in_site_)].be; }
  backend::Backend& layer_backend(int il) const {
    return *sites_[static_cast<size_t>(layer_site_[static_cast<size_t>(il)])].be;
  }
  backend::Backend& output_backend() const { return *sites_[static_cast<size_t>(out_site_)].be; }
  // Whether any of its backends computes prompt and generated tokens differently (Backend::results_depend_on_kind).
  bool results_depend_on_kind() const {
    for (const Site& s : sites_) {
      if (s.be->results_depend_on_kind()) return true;
    }
    return false;
  }
  // Layers on the placement's `first` backend (n_layer when the model is not split).
  int n_first_layers() const { return n_first_; }
  // e.g. "layers 0-19 on gpu (CUDA, ...), layers 20-31 and the output on cpu (avx2, 8 threads)".
  std::string placement_summary() const;
  // The KV shape, with each layer's backend (KvCache::create places each layer's K/V there).
  kv::KvShape kv_shape() const;
  // Bytes of weight data one decode step reads (all weights; for MoE, only the used share of the experts).
  size_t weight_bytes_per_token() const;

  // Runs the batch: writes each token's K/V into `cache` (the batch's block tables must come from it) and stores
  // the logits of batch.output_rows in `logits` ([n_outputs][n_vocab], row-major). A backend failure during the
  // pass (Backend::take_error, e.g. a GPU fault) is returned as an error, with `logits` empty and the K/V rows of
  // this batch undefined; the model stays usable for later batches.
  // With logits == nullptr the logits stay on the output backend, for sample() and logits_row() (until the next
  // pass): the on-device sampling path, where only token ids cross to the host.
  Status forward(backend::Batch batch, kv::KvCache& cache, std::vector<float>* logits);
  // ids[i] = the token of rows[i] (row = output row of the last forward(..., nullptr)): Backend::sample on the
  // output backend (see there for `host`).
  Status sample(std::span<const backend::SampleRow> rows, const backend::HostSampleFn& host, int32_t* ids);
  // Downloads output row `row` of the last forward(..., nullptr) into dst [n_vocab].
  Status logits_row(int64_t row, float* dst);

  // Device loss (Backend::device_lost): true when a backend of the model lost its device, as a GPU kernel fault
  // does; every forward pass then fails until recover().
  bool device_lost() const;
  // Brings the model back after a device loss: resets each lost backend's device (Backend::reset_device, which
  // frees everything on it), loads the weights again from the still-mapped file and drops the workspaces (made
  // anew by the next pass). Backends that were not lost (the CPU half of a split) keep their weights. Every KV
  // cache made for the model is invalid afterwards (its memory on the device is gone): the caller drops it and
  // makes a new one (kv_shape() is unchanged). When a device cannot be brought back, the whole model moves to the
  // placement's fallback backend (its weights load from the mapped file again, kv_shape() names the new backend)
  // and fallback_reason() says why; without a fallback, or when that fails too, the model stays unusable:
  // recover() and every later forward() return that error. Ok, doing nothing, when no device was lost.
  Status recover();
  // Why the model runs on its fallback backend (recover() moved it there), or empty.
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  struct Buffers {
    int64_t n_tokens = 0, n_outputs = 0;
    std::vector<std::unique_ptr<backend::Buffer>> owned;
    backend::Tensor x, xb, q, k, v, att, hb, hb2, hb3;  // per token rows (hb3: the SiLU gate's output)
    backend::Tensor router, expert_ids, expert_w;  // MoE per token
    backend::Tensor eg, eu, ed;                    // MoE per (token, used expert)
    backend::Tensor sg, su, sgate;                 // shared expert per token (n_ff_shexp > 0)
    backend::Tensor xo, logits;                    // per output row
  };
  // One backend the model runs on, with its workspace.
  struct Site {
    backend::Backend* be = nullptr;
    bool runs_layers = false;
    bool runs_output = false;
    Buffers ws;
  };

  explicit Model(std::shared_ptr<gguf::File> file) : file_(std::move(file)) {}
  Status place(Placement& placement);
  // Loads every weight through its site's backend into w_ (the CPU backend views the mapped file: no copy).
  Status load_weights();
  Status ensure_workspace(Site& site, int64_t n_tokens, int64_t n_outputs);
  void attention_block(int il, const backend::DeviceBatch& db, kv::KvCache& cache, int64_t n);
  void ffn_block(int il, int64_t n);
  // Copies the hidden state x (n rows) from one site's workspace to another's; the source's error, if any.
  Status move_hidden(Site& from, Site& to, int64_t n);
  // Waits for every site, takes their errors (all of them, so none leaks into the next pass) and returns `first`
  // if it is an error, else the first site's error.
  Status finish(Status first);

  std::shared_ptr<gguf::File> file_;
  const ArchFamily* family_ = nullptr;
  Status unusable_;  // set when recover() could not bring a lost device back
  std::unique_ptr<backend::Backend> owned_backend_;  // destroyed after the workspaces (declared before sites_)
  std::function<std::unique_ptr<backend::Backend>()> make_fallback_;
  std::unique_ptr<backend::Backend> fallback_backend_;  // made by recover() when a device could not be reset
  std::string fallback_reason_;
  HParams hp_;
  Weights w_;
  int n_first_ = 0;
  std::vector<Site> sites_;      // distinct backends, in the order the pass uses them
  std::vector<int> layer_site_;  // [n_layer] index into sites_
  int in_site_ = 0, out_site_ = 0;
  std::vector<float> host_x_;  // staging for the hidden state between sites
  int64_t n_out_on_device_ = 0;  // output rows the last forward(..., nullptr) left on the output backend
};

}  // namespace rf::model
