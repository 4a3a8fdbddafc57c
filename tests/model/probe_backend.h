// A Backend decorator for model tests: forwards everything to an inner backend, counts the ops it runs, remembers
// the memory it allocated (to tell which backend holds a tensor), and can inject faults the way a GPU backend
// reports them: the k-th op (or an allocation) fails, the error is recorded, later ops are skipped until
// take_error() returns it. It can also lose its "device" the way a GPU backend does after a kernel fault (see
// lose_device_in).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"

namespace rf::test {

class ProbeBackend final : public backend::Backend {
 public:
  explicit ProbeBackend(backend::Backend& inner, std::string tag) : inner_(inner), tag_(std::move(tag)) {}

  // Ops run since construction (skipped ones not counted).
  int64_t ops() const { return ops_; }
  // Ops called since construction, skipped ones included (the index the next op gets).
  int64_t ops_seen() const { return ops_seen_; }
  // The next op with index `k` (counting from the op after this call, 0-based) fails.
  void fail_op_in(int64_t k) { fail_at_ = ops_seen_ + k; }
  // The next alloc() fails.
  void fail_next_alloc() { fail_alloc_ = true; }
  // Device loss, as a GPU backend reports a sticky fault: op `k` (counted as fail_op_in) fails, device_lost() turns
  // true, every op and allocation fails and every take_error() reports the loss until reset_device(). A reset then
  // fills the buffers from alloc() that are still alive with 0xff bytes (NaN as F32 and F16) and marks them stale:
  // on a GPU their memory is gone, so an op given a tensor in one (a workspace or KV cache kept across the reset)
  // fails here as it would fault there. With fail_resets(true) a reset fails and the device stays lost.
  void lose_device_in(int64_t k) { lose_at_ = ops_seen_ + k; }
  // The same at the nth op named `what` from now on (1-based; e.g. "to_host", the default sampler's downloads).
  void lose_device_on(std::string what, int nth) {
    lose_on_ = std::move(what);
    lose_on_left_ = nth;
  }
  void fail_resets(bool on) { fail_resets_ = on; }
  // While held, every op waits (in the thread that calls it) until release(): a test queues requests that must enter
  // the engine's passes together.
  void hold() {
    std::lock_guard lock(hold_mu_);
    held_ = true;
  }
  void release() {
    {
      std::lock_guard lock(hold_mu_);
      held_ = false;
    }
    hold_cv_.notify_all();
  }
  int64_t resets() const { return resets_; }
  // Every token of the batches prepared so far: its position and whether the batch marked it generated.
  std::vector<std::pair<int32_t, bool>>& kinds() { return kinds_; }
  // results_depend_on_kind() answers true (as the GPU backend in batch-invariant mode does).
  void claim_kind_dependence(bool on) { claim_kind_ = on; }
  // Names of the weights loaded through this backend, in order.
  const std::vector<std::string>& loaded() const { return loaded_; }
  // True when [p, p + 1) lies in a buffer this backend allocated.
  bool owns(const void* p) const {
    const auto* b = static_cast<const uint8_t*>(p);
    for (const auto& [base, size] : allocations_) {
      if (b >= base && b < base + size) return true;
    }
    return false;
  }

  std::string name() const override { return tag_ + " (" + inner_.name() + ")"; }
  Status take_error() override {
    Status s = error_;
    error_ = ok_status();
    if (s.ok() && lost_) s = Status::error(tag_ + ": device lost");
    if (s.ok()) return inner_.take_error();
    (void)inner_.take_error();
    return s;
  }
  bool device_lost() const override { return lost_; }
  Status reset_device() override {
    if (fail_resets_) return Status::error(tag_ + ": injected fault: the device cannot be reset");
    for (auto* b : *live_) {
      std::memset(b->data(), 0xff, b->size());
      b->stale = true;
    }
    lost_ = false;
    ++resets_;
    return ok_status();
  }
  std::unique_ptr<backend::Buffer> alloc(size_t bytes) override {
    if (fail_alloc_ || lost_) {
      fail_alloc_ = false;
      record("injected fault: cannot allocate " + std::to_string(bytes) + " bytes");
      return nullptr;
    }
    auto b = inner_.alloc(bytes);
    if (b == nullptr) return nullptr;
    allocations_.emplace_back(static_cast<const uint8_t*>(b->data()), b->size());
    return std::make_unique<LiveBuffer>(std::move(b), live_);
  }
  Expected<backend::Tensor> load_weight(const gguf::TensorInfo& info) override {
    loaded_.push_back(info.name);
    return inner_.load_weight(info);
  }
  void to_device(backend::Tensor dst, const void* src, size_t bytes) override {
    if (op("to_device")) inner_.to_device(dst, src, bytes);
  }
  void to_host(void* dst, backend::Tensor src, size_t bytes) override {
    if (op("to_host")) inner_.to_host(dst, src, bytes);
  }
  void sync() override { inner_.sync(); }
  std::unique_ptr<backend::DeviceBatch> prepare_batch(backend::Batch batch) override {
    for (int64_t i = 0; i < batch.n_tokens(); ++i) {
      kinds_.emplace_back(batch.positions[static_cast<size_t>(i)], batch.is_generated(i));
    }
    return inner_.prepare_batch(std::move(batch));
  }
  bool results_depend_on_kind() const override { return claim_kind_ || inner_.results_depend_on_kind(); }
  void embed(backend::Tensor out, backend::Tensor table, const backend::DeviceBatch& b) override {
    if (op("embed", {&out})) inner_.embed(out, table, b);
  }
  void get_rows(backend::Tensor out, backend::Tensor x, const backend::DeviceBatch& b) override {
    if (op("get_rows")) inner_.get_rows(out, x, b);
  }
  void matmul(backend::Tensor out, backend::Tensor x, backend::Tensor w) override {
    if (op("matmul", {&out, &x})) inner_.matmul(out, x, w);
  }
  void rms_norm(backend::Tensor out, backend::Tensor x, backend::Tensor weight, float eps) override {
    if (op("rms_norm")) inner_.rms_norm(out, x, weight, eps);
  }
  void add(backend::Tensor out, backend::Tensor a, backend::Tensor b) override {
    if (op("add")) inner_.add(out, a, b);
  }
  void silu_mul(backend::Tensor out, backend::Tensor gate, backend::Tensor up) override {
    if (op("silu_mul")) inner_.silu_mul(out, gate, up);
  }
  void sigmoid_scale(backend::Tensor out, backend::Tensor x, backend::Tensor gate) override {
    if (op("sigmoid_scale")) inner_.sigmoid_scale(out, x, gate);
  }
  void rope(backend::Tensor x, const backend::DeviceBatch& b, const backend::RopeParams& p) override {
    if (op("rope")) inner_.rope(x, b, p);
  }
  void kv_store(backend::Tensor kc, backend::Tensor vc, backend::Tensor k, backend::Tensor v,
                const backend::DeviceBatch& b) override {
    if (op("kv_store", {&kc, &vc, &k, &v})) inner_.kv_store(kc, vc, k, v, b);
  }
  void attention(backend::Tensor out, backend::Tensor q, backend::Tensor kc, backend::Tensor vc,
                 const backend::DeviceBatch& b, const backend::AttentionParams& p) override {
    if (op("attention", {&out, &q, &kc, &vc})) inner_.attention(out, q, kc, vc, b, p);
  }
  void moe_route(backend::Tensor ids, backend::Tensor weights, backend::Tensor logits, bool normalize) override {
    if (op("moe_route")) inner_.moe_route(ids, weights, logits, normalize);
  }
  void moe_matmul(backend::Tensor out, backend::Tensor x, backend::Tensor w, backend::Tensor ids) override {
    if (op("moe_matmul")) inner_.moe_matmul(out, x, w, ids);
  }
  void moe_combine(backend::Tensor out, backend::Tensor expert_out, backend::Tensor weights) override {
    if (op("moe_combine")) inner_.moe_combine(out, expert_out, weights);
  }

 private:
  // A buffer from alloc(), listed while it lives (reset_device poisons the listed ones).
  class LiveBuffer;
  using LiveSet = std::vector<LiveBuffer*>;
  class LiveBuffer final : public backend::Buffer {
   public:
    LiveBuffer(std::unique_ptr<backend::Buffer> inner, std::shared_ptr<LiveSet> live)
        : inner_(std::move(inner)), live_(std::move(live)) {
      live_->push_back(this);
    }
    ~LiveBuffer() override { std::erase(*live_, this); }
    void* data() const override { return inner_->data(); }
    size_t size() const override { return inner_->size(); }
    bool stale = false;  // alive across a reset_device()

   private:
    std::unique_ptr<backend::Buffer> inner_;
    std::shared_ptr<LiveSet> live_;
  };

  void record(const std::string& what) {
    if (error_.ok()) error_ = Status::error(tag_ + ": " + what);
  }
  // False when the op is skipped: an injected fault now, or an error recorded before, or one of `uses` in memory
  // from before a device reset.
  bool op(const char* what, std::initializer_list<const backend::Tensor*> uses = {}) {
    {
      std::unique_lock lock(hold_mu_);
      hold_cv_.wait(lock, [&] { return !held_; });
    }
    const int64_t index = ops_seen_++;
    for (const backend::Tensor* t : uses) {
      for (const LiveBuffer* b : *live_) {
        const auto* p = static_cast<const uint8_t*>(t->data);
        const auto* base = static_cast<const uint8_t*>(b->data());
        if (b->stale && p >= base && p < base + b->size()) {
          record(std::string("op ") + what + " uses memory from before the device reset");
        }
      }
    }
    if (index == fail_at_) record("injected fault in op " + std::to_string(index) + " (" + what + ")");
    const bool lose_on = lose_on_left_ > 0 && lose_on_ == what && --lose_on_left_ == 0;
    if (index == lose_at_ || lose_on) {
      record("injected device loss in op " + std::to_string(index) + " (" + what + ")");
      lost_ = true;
    }
    if (!error_.ok() || lost_) return false;
    ++ops_;
    return true;
  }

  backend::Backend& inner_;
  std::string tag_;
  Status error_;
  int64_t ops_ = 0, ops_seen_ = 0, fail_at_ = -1, lose_at_ = -1, resets_ = 0;
  bool fail_alloc_ = false, lost_ = false, fail_resets_ = false, claim_kind_ = false;
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  bool held_ = false;
  std::string lose_on_;
  int lose_on_left_ = 0;
  std::vector<std::pair<int32_t, bool>> kinds_;
  std::shared_ptr<LiveSet> live_ = std::make_shared<LiveSet>();
  std::vector<std::pair<const uint8_t*, size_t>> allocations_;
  std::vector<std::string> loaded_;
};

}  // namespace rf::test
