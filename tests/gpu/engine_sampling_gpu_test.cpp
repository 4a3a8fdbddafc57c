// The engine on the GPU in batch-invariant mode (serve's): sequences sampled on the device (no logprobs asked) get
// the tokens of the same requests sampled on the host (logprobs asked: their logits rows are downloaded and the CPU
// Sampler picks), both runs seeing the same logits whatever the batches, the draws from the same seeds; and greedy
// sequences run together get the text they get alone while prompt and generated tokens take different kernels.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backend/gpu/gpu_backend.h"
#include "backend/gpu/matmul.h"
#include "cli/synth.h"
#include "gpu_test_support.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "support/tiny_synth_model.h"

namespace rf::runtime {
namespace {

using namespace std::chrono_literals;

std::vector<std::vector<int32_t>> run(Engine& e, const std::vector<SequenceParams>& ps) {
  std::vector<std::shared_ptr<SequenceHandle>> hs;
  for (const auto& p : ps) {
    auto r = e.submit({p});
    EXPECT_TRUE(r.ok()) << r.message;
    if (r.ok()) hs.push_back(r.handles[0]);
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& h : hs) {
    SequenceUpdate u;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (u.finish == FinishReason::kNone && std::chrono::steady_clock::now() < deadline) h->next(&u, 100ms);
    EXPECT_EQ(u.finish, FinishReason::kLength) << u.error;
    std::vector<int32_t> t;
    for (const auto& ev : u.tokens) t.push_back(ev.token);
    out.push_back(t);
  }
  return out;
}

// A fresh engine on m runs ps (submitted together) to their end; max_batch: the most sequences one step took.
std::vector<std::vector<int32_t>> run_fresh(model::Model& m, const EngineOptions& o,
                                            const std::vector<SequenceParams>& ps, int64_t* max_batch = nullptr) {
  auto e = Engine::create(m, o);
  EXPECT_TRUE(e.ok()) << e.error_message();
  if (!e.ok()) return {};
  auto out = run(**e, ps);
  if (max_batch != nullptr) *max_batch = (*e)->stats().max_batch_sequences;
  return out;
}

// A GPU backend in batch-invariant mode (serve's), or nullptr with the test failed.
std::unique_ptr<gpu::GpuBackend> invariant_backend() {
  auto created = gpu::GpuBackend::create(0);
  EXPECT_TRUE(created.ok()) << created.error_message();
  if (!created.ok()) return nullptr;
  (*created)->set_batch_invariant(true);
  return std::move(*created);
}

TEST(EngineGpuSampling, DeviceSampledTokensEqualTheHostSampledOnes) {
  RF_REQUIRE_GPU(info);
  (void)info;
  const auto backend = invariant_backend();
  ASSERT_NE(backend, nullptr);
  gpu::GpuBackend& be = *backend;
  // Batch invariance: every batch of this model's integer-product types goes through the int8 matrix-vector
  // product, whatever the scheduler's batching (its 64-wide rows are too narrow for the tensor-core kernel).
  auto m = model::Model::load(test::tiny_synth_model("engine_sampling_gpu", 320, 256), be);
  ASSERT_TRUE(m.ok()) << m.error_message();
  EngineOptions o;
  o.ctx_size = 128;
  o.max_running = 8;
  std::vector<SequenceParams> ps;
  for (int i = 0; i < 8; ++i) {
    SequenceParams p;
    for (int j = 0; j < 5 + i; ++j) p.prompt.push_back((i * 37 + j * 11) % 320);
    p.max_tokens = 24;
    p.ignore_eos = true;
    p.sampler.seed = 100 + static_cast<uint64_t>(i);
    p.sampler.temperature = i == 0 ? 0.0f : 0.5f + 0.1f * static_cast<float>(i);
    p.sampler.top_k = i % 3 == 0 ? 0 : 20 * i;
    p.sampler.top_p = i % 2 == 0 ? 0.9f : 1.0f;
    p.sampler.min_p = i % 4 == 1 ? 0.05f : 0.0f;
    if (i >= 6) {
      p.sampler.repeat_penalty = 1.2f;
      p.sampler.frequency_penalty = 0.1f;
      p.sampler.presence_penalty = 0.1f;
    }
    ps.push_back(p);
  }
  const auto device = run_fresh(**m, o, ps);
  for (auto& p : ps) p.top_logprobs = 0;  // logprobs: the logits rows come to the host
  const auto host = run_fresh(**m, o, ps);
  ASSERT_EQ(device.size(), ps.size());
  ASSERT_EQ(host.size(), ps.size());
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(device[i], host[i]) << "sequence " << i;
}

// Batch invariance with both kernels of each kind in play: a 256-wide Q4_K_M model with heads of 64, so that prompt
// tokens go through mmq and flash attention, generated ones through the matrix-vector product and decode
// attention. Eight greedy sequences submitted together (prompt chunks of up to 16 tokens mixed with the others'
// decode tokens) get the tokens each gets alone.
TEST(EngineGpuSampling, GreedyTextTogetherIsTheTextAloneWhenPromptAndDecodeTakeDifferentKernels) {
  RF_REQUIRE_GPU(info);
  (void)info;
  const auto backend = invariant_backend();
  ASSERT_NE(backend, nullptr);
  gpu::GpuBackend& be = *backend;
  cli::SynthOptions so;
  so.n_vocab = 512;
  so.n_head = 4;
  so.n_head_kv = 2;
  so.n_ctx = 256;
  so.type = "Q4_K_M";
  so.threads = 2;
  so.output = ::testing::TempDir() + "/rf_engine_kinds_gpu_" + std::to_string(::getpid()) + ".gguf";
  ASSERT_TRUE(cli::write_synth_model(so).ok());
  auto m = model::Model::load(so.output, be);
  std::remove(so.output.c_str());
  ASSERT_TRUE(m.ok()) << m.error_message();
  EXPECT_EQ((*m)->results_depend_on_kind(), gpu::has_mmq_matmul(quant::Type::Q4_K));
  EngineOptions o;
  o.ctx_size = 256;
  o.max_running = 8;
  o.step_tokens = 16;
  std::vector<SequenceParams> ps;
  for (int i = 0; i < 8; ++i) {
    SequenceParams p;
    for (int j = 0; j < 3 + 5 * i; ++j) p.prompt.push_back((i * 53 + j * 29 + 7) % 512);
    p.max_tokens = 20;
    p.ignore_eos = true;
    p.sampler.temperature = 0.0f;
    ps.push_back(p);
  }
  int64_t max_batch = 0;
  const auto together = run_fresh(**m, o, ps, &max_batch);
  EXPECT_GT(max_batch, 1);
  ASSERT_EQ(together.size(), ps.size());
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : ps) {
    const auto one = run_fresh(**m, o, {p});
    ASSERT_EQ(one.size(), 1u);
    alone.push_back(one[0]);
  }
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(together[i], alone[i]) << "sequence " << i;
}

}  // namespace
}  // namespace rf::runtime
