// A Backend decorator for model tests: forwards everything to an inner backend, counts the ops it runs, remembers
// the memory it allocated (to tell which backend holds a tensor), and can inject faults the way a GPU backend
// reports them: the k-th op (or an allocation) fails, the error is recorded, later ops are skipped until
// take_error() returns it.
#pragma once

#include <cstdint>
#include <memory>
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
    if (s.ok()) return inner_.take_error();
    (void)inner_.take_error();
    return s;
  }
  std::unique_ptr<backend::Buffer> alloc(size_t bytes) override {
    if (fail_alloc_) {
      fail_alloc_ = false;
      record("injected fault: cannot allocate " + std::to_string(bytes) + " bytes");
      return nullptr;
    }
    auto b = inner_.alloc(bytes);
    if (b != nullptr) allocations_.emplace_back(static_cast<const uint8_t*>(b->data()), b->size());
    return b;
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
    return inner_.prepare_batch(std::move(batch));
  }
  void embed(backend::Tensor out, backend::Tensor table, const backend::DeviceBatch& b) override {
    if (op("embed")) inner_.embed(out, table, b);
  }
  void get_rows(backend::Tensor out, backend::Tensor x, const backend::DeviceBatch& b) override {
    if (op("get_rows")) inner_.get_rows(out, x, b);
  }
  void matmul(backend::Tensor out, backend::Tensor x, backend::Tensor w) override {
    if (op("matmul")) inner_.matmul(out, x, w);
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
    if (op("kv_store")) inner_.kv_store(kc, vc, k, v, b);
  }
  void attention(backend::Tensor out, backend::Tensor q, backend::Tensor kc, backend::Tensor vc,
                 const backend::DeviceBatch& b, const backend::AttentionParams& p) override {
    if (op("attention")) inner_.attention(out, q, kc, vc, b, p);
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
  void record(const std::string& what) {
    if (error_.ok()) error_ = Status::error(tag_ + ": " + what);
  }
  // False when the op is skipped: an injected fault now, or an error recorded before.
  bool op(const char* what) {
    const int64_t index = ops_seen_++;
    if (index == fail_at_) record("injected fault in op " + std::to_string(index) + " (" + what + ")");
    if (!error_.ok()) return false;
    ++ops_;
    return true;
  }

  backend::Backend& inner_;
  std::string tag_;
  Status error_;
  int64_t ops_ = 0, ops_seen_ = 0, fail_at_ = -1;
  bool fail_alloc_ = false;
  std::vector<std::pair<const uint8_t*, size_t>> allocations_;
  std::vector<std::string> loaded_;
};

}  // namespace rf::test
