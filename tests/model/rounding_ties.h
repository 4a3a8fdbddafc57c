// Rounding ties in the 8-bit activation formats, and a Backend wrapper that finds and resolves them.
//
// llama.cpp rounds every matmul's F32 activations to Q8_0 / Q8_1 / Q8_K before its integer dots. Where a scaled
// activation lies within a few float ulps of a .5 boundary, the float noise between two correct engines (their
// accumulation orders differ by ~1e-7 relative) decides which way it rounds; on the small random synth models one
// such flip moves the logits by 5e-3 .. 2e-2 nRMSE and can swap near-tied top logits. TieBackend forwards every
// op to a real backend, lists the activations that sit on such a tie (candidates) and can nudge chosen ones across
// it by the fewest ulps that flip the rounding, so a test can show that a disagreement with the golden logits is
// exactly one resolved tie and nothing else.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace rf::test {

// One activation element at a rounding tie: input row `row`, element `col` of the `call`-th matmul input of
// forward pass `forward` (counted from 0 per TieBackend). `nudged` is the nearest float to the original value
// that rounds the other way; `rel_change` = |nudged - original| / |original|.
struct RoundingTie {
  int forward = 0;
  int call = 0;
  int64_t row = 0;
  int64_t col = 0;
  float original = 0.0f;
  float nudged = 0.0f;
  double rel_change = 0.0;
  std::string weight_type;
  std::string describe() const;
};

// For each element of an activation row that the matmul with `weight` rounds to 8 bits (x * 127 / amax per
// Q8_0 / Q8_1 block of 32, x * -127 / max per Q8_K block of 256; block extremes excluded, they are exactly +-127):
// calls fn(j, nudged) where `nudged` is the nearest float to x[j] that rounds to the other integer, for those
// within `max_rel_change`. Nothing for activation formats that are not 8-bit.
template <typename Fn>
void for_each_tie(quant::Type weight, const float* row, int64_t n, double max_rel_change, Fn fn);
bool tie_block(quant::Type weight, int* block);
float tie_scale(const float* block, int n, int* extreme);
bool tie_nudge(float x, float scale, float* nudged);
// The nearest float to x that rounds to a different F16 (round to nearest even); false past the F16 range.
bool tie_nudge_f16(float x, float* nudged);

template <typename Fn>
void for_each_tie(quant::Type weight, const float* row, int64_t n, double max_rel_change, Fn fn) {
  if (weight == quant::Type::F16) {
    for (int64_t j = 0; j < n; ++j) {
      float nudged;
      const double x = row[j];
      if (x != 0.0 && tie_nudge_f16(row[j], &nudged) && std::fabs((nudged - x) / x) <= max_rel_change) fn(j, nudged);
    }
    return;
  }
  int block = 0;
  if (!tie_block(weight, &block)) return;
  for (int64_t b0 = 0; b0 + block <= n; b0 += block) {
    int extreme = -1;
    const float scale = tie_scale(row + b0, block, &extreme);
    for (int j = 0; j < block; ++j) {
      float nudged;
      const float x = row[b0 + j];
      if (j == extreme || !tie_nudge(x, scale, &nudged)) continue;
      const double rel = (static_cast<double>(nudged) - x) / static_cast<double>(x);
      if (rel <= max_rel_change && -rel <= max_rel_change) fn(b0 + j, nudged);
    }
  }
}

class TieBackend final : public backend::Backend {
 public:
  explicit TieBackend(backend::Backend& inner) : inner_(inner) {}

  // Record candidates of forward pass `forward` within `max_rel_change` (relative change of the activation needed
  // to flip its rounding); max_rel_change 0 records nothing.
  void record(double max_rel_change, int forward) {
    record_rel_ = max_rel_change;
    record_forward_ = forward;
  }
  const std::vector<RoundingTie>& candidates() const { return candidates_; }
  // Ties to flip on the next passes (matched by forward, call, row, col); counters restart at 0.
  void set_nudges(std::vector<RoundingTie> nudges);
  void restart() { forward_ = -1; candidates_.clear(); }

  std::string name() const override { return inner_.name(); }
  std::unique_ptr<backend::Buffer> alloc(size_t bytes) override { return inner_.alloc(bytes); }
  Expected<backend::Tensor> load_weight(const gguf::TensorInfo& info) override { return inner_.load_weight(info); }
  void to_device(backend::Tensor dst, const void* src, size_t bytes) override { inner_.to_device(dst, src, bytes); }
  void to_host(void* dst, backend::Tensor src, size_t bytes) override { inner_.to_host(dst, src, bytes); }
  void sync() override { inner_.sync(); }
  std::unique_ptr<backend::DeviceBatch> prepare_batch(backend::Batch batch) override;
  void embed(backend::Tensor out, backend::Tensor table, const backend::DeviceBatch& b) override {
    inner_.embed(out, table, b);
  }
  void get_rows(backend::Tensor out, backend::Tensor x, const backend::DeviceBatch& b) override {
    inner_.get_rows(out, x, b);
  }
  void matmul(backend::Tensor out, backend::Tensor x, backend::Tensor w) override;
  void rms_norm(backend::Tensor out, backend::Tensor x, backend::Tensor weight, float eps) override {
    inner_.rms_norm(out, x, weight, eps);
  }
  void add(backend::Tensor out, backend::Tensor a, backend::Tensor b) override { inner_.add(out, a, b); }
  void silu_mul(backend::Tensor out, backend::Tensor gate, backend::Tensor up) override {
    inner_.silu_mul(out, gate, up);
  }
  void sigmoid_scale(backend::Tensor out, backend::Tensor x, backend::Tensor gate) override {
    inner_.sigmoid_scale(out, x, gate);
  }
  void rope(backend::Tensor x, const backend::DeviceBatch& b, const backend::RopeParams& p) override {
    inner_.rope(x, b, p);
  }
  void kv_store(backend::Tensor kc, backend::Tensor vc, backend::Tensor k, backend::Tensor v,
                const backend::DeviceBatch& b) override;
  void attention(backend::Tensor out, backend::Tensor q, backend::Tensor kc, backend::Tensor vc,
                 const backend::DeviceBatch& b, const backend::AttentionParams& p) override;
  void moe_route(backend::Tensor ids, backend::Tensor weights, backend::Tensor logits, bool normalize) override {
    inner_.moe_route(ids, weights, logits, normalize);
  }
  void moe_matmul(backend::Tensor out, backend::Tensor x, backend::Tensor w, backend::Tensor ids) override;
  void moe_combine(backend::Tensor out, backend::Tensor expert_out, backend::Tensor weights) override {
    inner_.moe_combine(out, expert_out, weights);
  }

 private:
  // Applies nudges and records candidates for an input rounded to the activation format of `weight` (F16 for the
  // K/V cache and the query of an F16 cache); distinct inputs (by address) count as new calls.
  void visit_input(backend::Tensor x, quant::Type weight);

  backend::Backend& inner_;
  double record_rel_ = 0.0;
  int record_forward_ = -1;
  std::vector<RoundingTie> candidates_;
  std::vector<RoundingTie> nudges_;
  int forward_ = -1;
  int call_ = -1;
  const void* last_input_ = nullptr;
};

}  // namespace rf::test
