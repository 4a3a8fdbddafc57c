// Hybrid execution on the GPU machine: shared models split over the GPU backend (first layers) and the CPU
// backend (the rest, and the output) agree with the CPU-only model within the golden tolerances (nRMSE per row:
// F32/F16 2e-3, BF16 1e-2, quantized 5e-2; same argmax up to near-ties) for prefill, decode and a mixed batch;
// runtime::load_model splits as asked (--n-gpu-layers) and puts everything on the GPU when it fits (auto); and a
// GPU error (here an allocation the device cannot satisfy) fails one forward pass with a clear error while the
// next pass runs normally.
// Skips without a GPU or without the shared data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/gpu/gpu_backend.h"
#include "gpu_test_support.h"
#include "model/golden.h"
#include "model/hybrid_support.h"
#include "model/model.h"
#include "runtime/device_select.h"
#include "support/shared_data.h"

namespace rf::gpu::test {
namespace {

const char* const kModels[] = {"stories260K",     "fortune-qwen2-f32",  "fortune-qwen2-Q8_0", "synth-llama-Q4_K_M",
                               "synth-llama-F16", "synth-qwen2-Q4_K_M", "synth-mixtral-Q8_0", "synth-mixtral-f32"};

// Worst nRMSE over the rows of every step, and whether every row's argmax agrees (near-ties allowed).
struct Agreement {
  double worst = 0.0;
  int argmax_mismatches = 0;
};

Agreement compare(const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& want, int n_vocab,
                  double tie_gap) {
  Agreement a;
  for (size_t s = 0; s < got.size(); ++s) {
    const size_t rows = want[s].size() / static_cast<size_t>(n_vocab);
    for (size_t r = 0; r < rows; ++r) {
      const std::vector<float> ref(want[s].begin() + static_cast<std::ptrdiff_t>(r * n_vocab),
                                   want[s].begin() + static_cast<std::ptrdiff_t>((r + 1) * n_vocab));
      const float* row = got[s].data() + r * static_cast<size_t>(n_vocab);
      a.worst = std::max(a.worst, rf::test::nrmse(row, ref));
      double gap = 0.0;
      if (!rf::test::argmax_agrees(row, ref, tie_gap, &gap)) ++a.argmax_mismatches;
    }
  }
  return a;
}

class HybridGpu : public ::testing::TestWithParam<const char*> {};

TEST_P(HybridGpu, SplitOverGpuAndCpuAgreesWithTheCpu) {
  const std::string name = GetParam();
  RF_REQUIRE_SHARED(path, "models/" + name + ".gguf");
  RF_REQUIRE_GPU(info);
  auto file = gguf::File::open(path);
  ASSERT_TRUE(file.ok()) << file.error_message();
  backend::cpu::CpuBackend cpu_ref(0), cpu(0);
  auto ref = model::Model::load(*file, cpu_ref);
  ASSERT_TRUE(ref.ok()) << ref.error_message();
  const int n_layer = (*ref)->hparams().n_layer;
  const int n_vocab = (*ref)->hparams().n_vocab;
  const auto script = rf::test::default_script(n_vocab);
  auto ref_cache = rf::test::make_cache(**ref);
  auto want = rf::test::run_script(**ref, *ref_cache, script);
  ASSERT_TRUE(want.ok()) << want.error_message();
  const double tol = rf::test::golden_tolerance(name);
  const double tie_gap = tol >= 5e-2 ? 0.05 : 0.0;

  for (int n_gpu : std::set<int>{1, n_layer / 2, n_layer - 1, n_layer}) {
    SCOPED_TRACE(name + ": " + std::to_string(n_gpu) + " of " + std::to_string(n_layer) + " layers on the GPU");
    auto gpu = GpuBackend::create(0);
    ASSERT_TRUE(gpu.ok()) << gpu.error_message();
    model::Placement p;
    p.first = gpu->get();
    p.rest = &cpu;
    p.n_first = n_gpu;
    auto m = model::Model::load(*file, std::move(p));
    ASSERT_TRUE(m.ok()) << m.error_message();
    auto cache = rf::test::make_cache(**m);
    ASSERT_NE(cache, nullptr);
    // Two runs: the second replays decode steps through the captured graphs.
    for (int run = 0; run < 2; ++run) {
      auto got = rf::test::run_script(**m, *cache, script);
      ASSERT_TRUE(got.ok()) << got.error_message();
      const Agreement a = compare(*got, *want, n_vocab, tie_gap);
      EXPECT_LE(a.worst, tol);
      EXPECT_EQ(a.argmax_mismatches, 0);
      if (run == 0) {
        std::printf("[hybrid gpu] %-20s %2d/%-2d layers on the GPU: worst nRMSE vs CPU %.2e (tolerance %.0e)\n",
                    name.c_str(), n_gpu, n_layer, a.worst, tol);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, HybridGpu, ::testing::ValuesIn(kModels),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string s = p.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

// Decode graphs: steps whose launches repeat byte for byte replay an earlier step's graph instead of capturing
// one; the logits of every step are bitwise those of the same script without graphs.
TEST(HybridGpuGraphs, DecodeStepsReplayTheirGraphsAndGiveTheUngraphedBits) {
  RF_REQUIRE_SHARED(path, "models/fortune-qwen2-Q4_K_M.gguf");
  RF_REQUIRE_GPU(info);
  auto file = gguf::File::open(path);
  ASSERT_TRUE(file.ok()) << file.error_message();
  std::vector<std::vector<std::vector<float>>> logits;
  for (const bool graphs : {false, true}) {
    auto gpu = GpuBackend::create(0);
    ASSERT_TRUE(gpu.ok()) << gpu.error_message();
    (*gpu)->set_graphs_enabled(graphs);
    auto m = model::Model::load(*file, **gpu);
    ASSERT_TRUE(m.ok()) << m.error_message();
    auto cache = rf::test::make_cache(**m);
    ASSERT_NE(cache, nullptr);
    std::vector<rf::test::ScriptStep> script = rf::test::default_script((*m)->hparams().n_vocab);
    for (int i = 0; i < 6; ++i) script.insert(script.begin() + 2, script[1]);  // more single-token steps in a row
    for (int run = 0; run < 2; ++run) {
      auto got = rf::test::run_script(**m, *cache, script);
      ASSERT_TRUE(got.ok()) << got.error_message();
      logits.push_back(std::move(*got));
    }
    if (graphs) {
      EXPECT_GT((*gpu)->graph_replays(), 0) << "no decode step replayed a graph";
      EXPECT_GT((*gpu)->graph_launches(), (*gpu)->graph_instantiations());
      std::printf("[graphs] %lld launches, %lld replays, %lld instantiations\n",
                  static_cast<long long>((*gpu)->graph_launches()), static_cast<long long>((*gpu)->graph_replays()),
                  static_cast<long long>((*gpu)->graph_instantiations()));
    }
  }
  ASSERT_EQ(logits.size(), 4u);
  for (size_t run = 0; run < 2; ++run) {
    ASSERT_EQ(logits[run].size(), logits[2 + run].size());
    for (size_t step = 0; step < logits[run].size(); ++step) {
      ASSERT_EQ(logits[run][step], logits[2 + run][step]) << "run " << run << " step " << step << " differs with graphs";
    }
  }
}

TEST(HybridGpuLoad, LoadModelSplitsAsAskedAndPutsASmallModelWhollyOnTheGpu) {
  RF_REQUIRE_SHARED(path, "models/fortune-qwen2-Q8_0.gguf");
  RF_REQUIRE_GPU(info);
  auto gpu = GpuBackend::create(0);
  ASSERT_TRUE(gpu.ok()) << gpu.error_message();
  backend::BackendOptions o;
  o.n_threads = 2;
  o.n_gpu_layers = 2;
  auto split = runtime::load_model(path, **gpu, o);
  ASSERT_TRUE(split.ok()) << split.error_message();
  const int n_layer = (*split)->hparams().n_layer;
  ASSERT_GT(n_layer, 2);
  EXPECT_EQ((*split)->n_first_layers(), 2);
  EXPECT_EQ(&(*split)->layer_backend(1), gpu->get());
  EXPECT_NE(&(*split)->layer_backend(2), gpu->get());
  EXPECT_NE(&(*split)->output_backend(), gpu->get());
  auto cache = rf::test::make_cache(**split);
  auto got = rf::test::run_script(**split, *cache, rf::test::default_script((*split)->hparams().n_vocab));
  EXPECT_TRUE(got.ok()) << got.error_message();

  o.n_gpu_layers = -1;  // auto: a few MB fit on any GPU
  auto gpu2 = GpuBackend::create(0);
  ASSERT_TRUE(gpu2.ok());
  auto all = runtime::load_model(path, **gpu2, o);
  ASSERT_TRUE(all.ok()) << all.error_message();
  EXPECT_EQ((*all)->n_first_layers(), n_layer);
  EXPECT_EQ(&(*all)->output_backend(), gpu2->get());
  // The planned arenas hold the weights without a half-used doubling arena: one allocation.
  EXPECT_EQ((*gpu2)->arena_count(), 1u);
  EXPECT_LE((*gpu2)->arena_bytes_reserved() - (*gpu2)->arena_bytes_used(), size_t{1} << 20);
}

TEST(HybridGpuErrors, AGpuErrorFailsOnePassAndTheNextPassRunsNormally) {
  RF_REQUIRE_SHARED(path, "models/stories260K.gguf");
  RF_REQUIRE_GPU(info);
  auto gpu = GpuBackend::create(0);
  ASSERT_TRUE(gpu.ok()) << gpu.error_message();
  auto m = model::Model::load(path, **gpu);
  ASSERT_TRUE(m.ok()) << m.error_message();
  auto cache = rf::test::make_cache(**m);
  const auto script = rf::test::default_script((*m)->hparams().n_vocab);
  auto want = rf::test::run_script(**m, *cache, script);
  ASSERT_TRUE(want.ok()) << want.error_message();

  // An allocation the device cannot satisfy is a recoverable runtime error: recorded, not fatal.
  EXPECT_EQ((*gpu)->alloc(size_t{1} << 50), nullptr);
  // The recorded error fails the next pass (its ops are skipped) with the runtime's message...
  auto failed = rf::test::run_script(**m, *cache, script);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error_message().find("model: forward pass on gpu"), std::string::npos) << failed.error_message();
  EXPECT_NE(failed.error_message().find("device buffer allocation"), std::string::npos) << failed.error_message();
  // ...and only that pass: the next one gives the logits of before.
  auto again = rf::test::run_script(**m, *cache, script);
  ASSERT_TRUE(again.ok()) << again.error_message();
  const Agreement a = compare(*again, *want, (*m)->hparams().n_vocab, 0.0);
  EXPECT_LE(a.worst, 1e-6);
  EXPECT_EQ(a.argmax_mismatches, 0);
  EXPECT_TRUE((*gpu)->take_error().ok());
}

}  // namespace
}  // namespace rf::gpu::test
