// Golden logits from ../shared/golden/logits and the comparison metrics of its README.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"

namespace rf::test {

struct Golden {
  std::string prompt;
  std::vector<int> tokens;
  int n_vocab = 0;
  std::vector<std::vector<float>> logits;         // per prompt position
  std::vector<int> greedy;
  std::string greedy_text;
  std::vector<std::vector<float>> greedy_logits;  // after feeding greedy[i]
};

std::optional<Golden> load_golden(const std::string& path);

// rms(a - b) / std(b)
double nrmse(const float* a, const std::vector<float>& b);
int argmax(const float* v, int n);

// True when ours picks the golden argmax, or when the golden's own logit for our pick is within `gap` (in units
// of the golden row's std) of its maximum: a near-tie that llama.cpp's rounding noise can decide either way.
bool argmax_agrees(const float* ours, const std::vector<float>& golden, double gap, double* golden_gap);

// Acceptance per position for a model file name (README: F32/F16 2e-3, BF16 1e-2, quantized 5e-2).
double golden_tolerance(const std::string& model_name);

// One sequence in a fresh 256-slot cache (blocks of 16) on the model's backends: feeds tokens at consecutive
// positions in one batch per call and returns the logits of every fed token (a failed pass fails the test).
class SequenceFeeder {
 public:
  explicit SequenceFeeder(model::Model& m);
  std::vector<float> feed(const std::vector<int>& tokens);

 private:
  model::Model& model_;
  std::unique_ptr<kv::KvCache> cache_;
  int32_t seq_ = 0;
};

}  // namespace rf::test
