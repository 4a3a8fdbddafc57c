// The engine tests' fixture (engine_test.cpp, engine_device_loss_test.cpp): the tiny synth model on a CPU backend,
// loaded once per suite, a greedy single-sequence oracle, and helpers to submit requests and collect what comes back.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "support/tiny_synth_model.h"

namespace rf::runtime {

// Failures name the values (gtest would print the enums as raw bytes, easy to misread as the other enum).
inline void PrintTo(FinishReason r, std::ostream* os) {
  *os << "FinishReason(" << static_cast<int>(r) << ", \"" << finish_reason_name(r) << "\")";
}
inline void PrintTo(SubmitError e, std::ostream* os) {
  constexpr const char* kNames[] = {"kNone", "kInvalid", "kOverloaded", "kShuttingDown"};
  const auto i = static_cast<size_t>(e);
  *os << "SubmitError::" << (i < std::size(kNames) ? kNames[i] : "?");
}

// The tiny synth model (tests/support), loaded once per test binary.
class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    be_ = new backend::cpu::CpuBackend(2);
    auto m = model::Model::load(test::tiny_synth_model("engine_test_synth", 320, 256), *be_);
    ASSERT_TRUE(m.ok()) << m.error_message();
    model_ = m->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete be_;
  }

  static std::unique_ptr<Engine> make_engine(EngineOptions o = {}) {
    if (o.ctx_size == 0) o.ctx_size = 128;
    auto e = Engine::create(*model_, o);
    EXPECT_TRUE(e.ok()) << e.error_message();
    return e.ok() ? std::move(*e) : nullptr;
  }

  // Greedy decoding of one sequence, alone, one token per forward pass: the oracle for the engine. It uses the
  // model directly, so it must not run while an engine is stepping the same model.
  static std::vector<int32_t> reference_greedy(const std::vector<int32_t>& prompt, int n) {
    kv::KvOptions kvo;
    kvo.n_slots = static_cast<int32_t>(prompt.size()) + n + 16;
    auto cache = kv::KvCache::create(*be_, model_->kv_shape(), kvo);
    const int32_t seq = (*cache)->add_sequence();
    std::vector<int32_t> out, toks = prompt;
    std::vector<float> logits;
    int32_t pos = 0;
    std::vector<int32_t> feed = prompt;
    for (int i = 0; i < n; ++i) {
      EXPECT_TRUE((*cache)->reserve(seq, static_cast<int32_t>(feed.size())).ok());
      backend::Batch b;
      for (size_t j = 0; j < feed.size(); ++j) {
        b.tokens.push_back(feed[j]);
        b.positions.push_back(pos + static_cast<int32_t>(j));
        b.seq.push_back(0);
      }
      b.output_rows = {static_cast<int32_t>(feed.size()) - 1};
      b.block_tables.push_back((*cache)->block_table(seq));
      EXPECT_TRUE(model_->forward(std::move(b), **cache, &logits).ok());
      (*cache)->advance(seq, static_cast<int32_t>(feed.size()));
      pos += static_cast<int32_t>(feed.size());
      const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(next);
      feed = {next};
    }
    return out;
  }

  static std::vector<int32_t> prompt_of(int n, int salt) {
    std::vector<int32_t> p = {1};
    for (int i = 1; i < n; ++i) p.push_back(3 + (i * 37 + salt * 101) % 300);
    return p;
  }

  static SequenceParams greedy(std::vector<int32_t> prompt, int n) {
    SequenceParams p;
    p.prompt = std::move(prompt);
    p.sampler.temperature = 0.0f;
    p.sampler.top_k = 0;
    p.sampler.top_p = 1.0f;
    p.sampler.min_p = 0.0f;
    p.max_tokens = n;
    return p;
  }

  struct Outcome {
    std::vector<int32_t> tokens;
    std::vector<TokenEvent> events;
    FinishReason finish = FinishReason::kNone;
    std::string error;
    int32_t cached = 0;
  };

  static Outcome collect(const std::shared_ptr<SequenceHandle>& h) {
    Outcome o;
    SequenceUpdate u;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (u.finish == FinishReason::kNone && std::chrono::steady_clock::now() < deadline) h->next(&u, std::chrono::milliseconds(100));
    o.events = u.tokens;
    for (const auto& ev : u.tokens) o.tokens.push_back(ev.token);
    o.finish = u.finish;
    o.error = u.error;
    o.cached = u.cached_prompt_tokens;
    return o;
  }

  static Outcome run_one(Engine& e, SequenceParams p) {
    auto r = e.submit({std::move(p)});
    EXPECT_TRUE(r.ok()) << r.message;
    return r.ok() ? collect(r.handles[0]) : Outcome{};
  }

  static void wait_idle(Engine& e) {
    for (int i = 0; i < 500 && (e.stats().running > 0 || e.stats().waiting > 0); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  static inline backend::cpu::CpuBackend* be_ = nullptr;
  static inline model::Model* model_ = nullptr;
};

}  // namespace rf::runtime
