// The forward pass on the GPU backend against llama.cpp's golden logits (../shared/golden/logits, or
// $ROCMFORGE_SHARED): for every shared model present, a one-batch prefill and teacher-forced decode steps (the
// `greedy` tokens fed one at a time through the paged F16 KV cache) within the golden README tolerances
// (nRMSE per position: F32/F16 2e-3, BF16 1e-2, quantized 5e-2) with the same argmax (near-ties allowed for
// quantized models, as in the CPU golden test). Skips without a GPU or without the shared data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/gpu/gpu_backend.h"
#include "gpu_test_support.h"
#include "kv/kv_cache.h"
#include "model/golden.h"
#include "model/model.h"
#include "support/shared_data.h"

namespace rf::gpu::test {
namespace {

const char* const kModels[] = {
    "stories260K",        "fortune-qwen2-f32",  "fortune-qwen2-Q8_0", "fortune-qwen2-Q4_K_M", "synth-llama-f32",
    "synth-llama-F16",    "synth-llama-BF16",   "synth-llama-Q8_0",   "synth-llama-Q4_0",     "synth-llama-Q4_1",
    "synth-llama-Q5_0",   "synth-llama-Q5_1",   "synth-llama-Q2_K",   "synth-llama-Q3_K_M",   "synth-llama-Q4_K_M",
    "synth-llama-Q5_K_M", "synth-llama-Q6_K",   "synth-llama-IQ4_NL", "synth-llama-IQ4_XS",   "synth-qwen2-f32",
    "synth-qwen2-Q8_0",   "synth-qwen2-Q4_K_M", "synth-mixtral-f32",  "synth-mixtral-Q8_0",   "synth-mixtral-Q4_K_M",
};

class GpuGoldenLogits : public ::testing::TestWithParam<const char*> {};

TEST_P(GpuGoldenLogits, PrefillAndTeacherForcedDecodeMatchLlamaCpp) {
  const std::string name = GetParam();
  RF_REQUIRE_SHARED(model_path, "models/" + name + ".gguf");
  RF_REQUIRE_GPU(info);
  auto gpu = GpuBackend::create(0);
  ASSERT_TRUE(gpu.ok()) << gpu.error_message();
  auto model = model::Model::load(model_path, **gpu);
  ASSERT_TRUE(model.ok()) << model.error_message();
  const double tol = rf::test::golden_tolerance(name);
  const double tie_gap = tol >= 5e-2 ? 0.05 : 0.0;
  double worst_prefill = 0.0, worst_decode = 0.0;
  for (const char* prompt : {"p1", "p2"}) {
    RF_REQUIRE_SHARED(golden_path, "golden/logits/" + name + "." + prompt + ".json");
    const auto g = rf::test::load_golden(golden_path);
    ASSERT_TRUE(g.has_value()) << golden_path;
    ASSERT_EQ(g->n_vocab, (*model)->hparams().n_vocab);
    rf::test::SequenceFeeder r(**model);
    const auto logits = r.feed(g->tokens);
    ASSERT_EQ(logits.size(), g->tokens.size() * static_cast<size_t>(g->n_vocab));
    for (size_t p = 0; p < g->tokens.size(); ++p) {
      const float* row = logits.data() + p * static_cast<size_t>(g->n_vocab);
      const double e = rf::test::nrmse(row, g->logits[p]);
      worst_prefill = std::max(worst_prefill, e);
      EXPECT_LE(e, tol) << name << " " << prompt << " prefill position " << p;
      double gap = 0.0;
      EXPECT_TRUE(rf::test::argmax_agrees(row, g->logits[p], tie_gap, &gap))
          << name << " " << prompt << " prefill position " << p << ": argmax differs, golden gap " << gap << " sd";
    }
    for (size_t i = 0; i < g->greedy.size(); ++i) {
      const auto step = r.feed({g->greedy[i]});
      const double e = rf::test::nrmse(step.data(), g->greedy_logits[i]);
      worst_decode = std::max(worst_decode, e);
      EXPECT_LE(e, tol) << name << " " << prompt << " decode step " << i;
      double gap = 0.0;
      EXPECT_TRUE(rf::test::argmax_agrees(step.data(), g->greedy_logits[i], tie_gap, &gap))
          << name << " " << prompt << " decode step " << i << ": argmax differs, golden gap " << gap << " sd";
    }
  }
  std::printf("[gpu golden] %-22s worst nRMSE prefill %.2e decode %.2e (tolerance %.0e)\n", name.c_str(), worst_prefill,
              worst_decode, tol);
}

INSTANTIATE_TEST_SUITE_P(AllSharedModels, GpuGoldenLogits, ::testing::ValuesIn(kModels),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string s = p.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

}  // namespace
}  // namespace rf::gpu::test
