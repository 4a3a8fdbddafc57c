// Device loss (a GPU kernel fault that leaves the context unusable), simulated by tests/model's ProbeBackend: the
// engine fails every sequence in flight with kError and a clear message, empties the prefix cache, has the model
// reset the device and reload its weights, makes a new KV cache, and serves queued and new requests with the
// tokens of an undisturbed model. When the reset fails, the model moves to its placement's fallback backend (the
// CPU) and serves on; without one, every later request fails with a clear error instead.
// The same path runs on a real GPU fault in tests/gpu/fault_recovery_gpu_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"
#include "model/probe_backend.h"
#include "runtime/engine.h"
#include "runtime/engine_fixture.h"
#include "support/tiny_synth_model.h"

namespace rf::runtime {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

class EngineDeviceLoss : public EngineTest {
 protected:
  // An engine over the tiny model loaded through `placement` (the probe on its own or split with a CPU backend).
  void start(model::Placement placement, EngineOptions o) {
    auto m = model::Model::load(file_, std::move(placement));
    ASSERT_TRUE(m.ok()) << m.error_message();
    model_under_test_ = std::move(*m);
    o.ctx_size = 128;
    auto created = Engine::create(*model_under_test_, o);
    ASSERT_TRUE(created.ok()) << created.error_message();
    engine_ = std::move(*created);
    // The probe's ops of one forward pass, measured while the engine is idle (a one-token request is one pass;
    // stats() orders the probe's counters after the scheduler thread's passes).
    run_one(*engine_, greedy(prompt_of(9, 4), 1));
    engine_->stats();
    const int64_t before = probe_.ops_seen();
    run_one(*engine_, greedy(prompt_of(9, 4), 1));
    engine_->stats();
    per_pass_ = probe_.ops_seen() - before;
    ASSERT_GT(per_pass_, 0);
  }

  // start() with the whole model on the probe and at most max_running sequences a pass.
  void start_on_probe(int max_running) {
    model::Placement p;
    p.first = &probe_;
    EngineOptions o;
    o.max_running = max_running;
    start(std::move(p), o);
  }

  // h failed with the device loss (its error holds `what`, the injected cause and the advice to retry), after
  // tokens that follow its undisturbed reference `ref`.
  static void expect_lost(const std::shared_ptr<SequenceHandle>& h, const std::vector<int32_t>& ref,
                          const std::string& what) {
    const auto out = collect(h);
    EXPECT_EQ(out.finish, FinishReason::kError);
    EXPECT_TRUE(contains(out.error, what)) << out.error;
    EXPECT_TRUE(contains(out.error, "injected device loss")) << out.error;
    EXPECT_TRUE(contains(out.error, "retry the request")) << out.error;
    ASSERT_LE(out.tokens.size(), ref.size());
    EXPECT_TRUE(std::equal(out.tokens.begin(), out.tokens.end(), ref.begin()));
  }

  std::shared_ptr<gguf::File> file_ = *gguf::File::open(test::tiny_synth_model("engine_test_synth", 320, 256));
  backend::cpu::CpuBackend cpu_{2};
  test::ProbeBackend probe_{cpu_, "probe"};
  std::unique_ptr<model::Model> model_under_test_;
  std::unique_ptr<Engine> engine_;
  int64_t per_pass_ = 0;
};

TEST_F(EngineDeviceLoss, InFlightSequencesFailAndQueuedAndLaterRequestsRunAsBefore) {
  const auto prompt_a = prompt_of(20, 1), prompt_b = prompt_of(12, 2), prompt_c = prompt_of(15, 3);
  const auto prompt_x = prompt_of(40, 5);  // two full blocks: it leaves them in the prefix cache
  const auto ref_a = reference_greedy(prompt_a, 50), ref_b = reference_greedy(prompt_b, 50);
  const auto ref_c = reference_greedy(prompt_c, 6), ref_x = reference_greedy(prompt_x, 4);
  ASSERT_NO_FATAL_FAILURE(start_on_probe(2));
  Engine& e = *engine_;
  const size_t weights_loaded = probe_.loaded().size();

  const auto x1 = run_one(e, greedy(prompt_x, 4));
  ASSERT_EQ(x1.tokens, ref_x);
  wait_idle(e);
  ASSERT_GT(e.stats().kv_blocks_cached, 0);

  // The device is lost in the middle of the second pass, with a and b running and c queued behind them
  // (max_running 2; c holds no K/V yet). The probe holds the engine's first pass until all three are queued, so b
  // enters the first or the second pass, whatever the threads' timing.
  probe_.lose_device_in(per_pass_ + per_pass_ / 2);
  probe_.hold();
  auto a = e.submit({greedy(prompt_a, 50)});
  auto b = e.submit({greedy(prompt_b, 50)});
  auto c = e.submit({greedy(prompt_c, 6)});
  probe_.release();
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  expect_lost(a.handles[0], ref_a, "lost this request's state");
  expect_lost(b.handles[0], ref_b, "lost this request's state");
  const auto out_c = collect(c.handles[0]);
  EXPECT_EQ(out_c.finish, FinishReason::kLength) << out_c.error;
  EXPECT_EQ(out_c.tokens, ref_c);
  EXPECT_EQ(probe_.resets(), 1);
  EXPECT_EQ(e.stats().device_recoveries, 1);
  EXPECT_FALSE(e.stats().device_unusable);
  EXPECT_EQ(probe_.loaded().size(), 2 * weights_loaded);  // every weight loaded again

  // The prefix cache was emptied with the device: x is computed again, with its first tokens.
  const auto x2 = run_one(e, greedy(prompt_x, 4));
  EXPECT_EQ(x2.finish, FinishReason::kLength);
  EXPECT_EQ(x2.cached, 0);
  EXPECT_EQ(x2.tokens, ref_x);
  // And it fills again.
  const auto x3 = run_one(e, greedy(prompt_x, 4));
  EXPECT_GT(x3.cached, 0);
  EXPECT_EQ(x3.tokens, ref_x);
  wait_idle(e);
  EXPECT_EQ(e.stats().kv_blocks_used, 0);
}

// The device is lost while a pass's tokens are sampled (the default sampler's download of a logits row): every
// running sequence fails alike, with the cause and the advice to retry, and the engine recovers as from a lost pass.
TEST_F(EngineDeviceLoss, LossWhileSamplingFailsEveryRunningSequenceAlike) {
  const auto prompt_a = prompt_of(17, 8), prompt_b = prompt_of(11, 9), prompt_c = prompt_of(14, 10);
  const auto ref_a = reference_greedy(prompt_a, 40), ref_b = reference_greedy(prompt_b, 40);
  const auto ref_c = reference_greedy(prompt_c, 5);
  ASSERT_NO_FATAL_FAILURE(start_on_probe(2));
  Engine& e = *engine_;
  // The third row download from now: a's or b's row of the second pass (the first pass samples a alone, or a and b).
  probe_.lose_device_on("to_host", 3);
  probe_.hold();
  auto a = e.submit({greedy(prompt_a, 40)});
  auto b = e.submit({greedy(prompt_b, 40)});
  probe_.release();
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string what = "sampling failed and the device lost this request's state";
  expect_lost(a.handles[0], ref_a, what);
  expect_lost(b.handles[0], ref_b, what);
  // c runs after the recovery (reset, reload), which follows a's and b's failure in the engine's loop.
  const auto out_c = run_one(e, greedy(prompt_c, 5));
  EXPECT_EQ(out_c.finish, FinishReason::kLength) << out_c.error;
  EXPECT_EQ(out_c.tokens, ref_c);
  EXPECT_EQ(probe_.resets(), 1);
  EXPECT_EQ(e.stats().device_recoveries, 1);
}

// A split model (layer 0 on the probe, layer 1 and the output on a plain CPU backend) loses the probe's device: only
// that backend is reset, and the whole model runs as before afterwards.
TEST_F(EngineDeviceLoss, HybridPlacementRecoversTheLostHalf) {
  backend::cpu::CpuBackend rest{2};
  const auto prompt_a = prompt_of(18, 6), prompt_b = prompt_of(23, 7);
  const auto ref_a = reference_greedy(prompt_a, 30), ref_b = reference_greedy(prompt_b, 8);
  model::Placement p;
  p.first = &probe_;
  p.rest = &rest;
  p.n_first = 1;
  EngineOptions o;
  o.max_running = 1;
  ASSERT_NO_FATAL_FAILURE(start(std::move(p), o));
  Engine& e = *engine_;
  ASSERT_EQ(model_under_test_->n_first_layers(), 1);
  // Two passes in: the probe's ops of a pass are those of layer 0 (and the embeddings).
  probe_.lose_device_in(2 * per_pass_ + 1);
  const auto out_a = run_one(e, greedy(prompt_a, 30));
  EXPECT_EQ(out_a.finish, FinishReason::kError);
  EXPECT_TRUE(contains(out_a.error, "injected device loss")) << out_a.error;
  ASSERT_LE(out_a.tokens.size(), ref_a.size());
  EXPECT_TRUE(std::equal(out_a.tokens.begin(), out_a.tokens.end(), ref_a.begin()));
  const auto out_b = run_one(e, greedy(prompt_b, 8));  // runs after the recovery (a's failure comes before it)
  EXPECT_EQ(out_b.finish, FinishReason::kLength) << out_b.error;
  EXPECT_EQ(out_b.tokens, ref_b);
  EXPECT_EQ(probe_.resets(), 1);
  EXPECT_EQ(e.stats().device_recoveries, 1);
}

// The device cannot be brought back: the request in flight fails, and so does every later one, each with an error
// that says why; nothing crashes and the engine still shuts down cleanly.
TEST_F(EngineDeviceLoss, FailedRecoveryFailsEveryLaterRequestClearly) {
  model::Placement p;
  p.first = &probe_;
  ASSERT_NO_FATAL_FAILURE(start(std::move(p), EngineOptions{}));
  Engine& e = *engine_;
  probe_.fail_resets(true);
  probe_.lose_device_in(per_pass_ / 2);
  const auto first = run_one(e, greedy(prompt_of(10, 8), 5));
  EXPECT_EQ(first.finish, FinishReason::kError);
  EXPECT_TRUE(contains(first.error, "injected device loss")) << first.error;
  for (int i = 0; i < 3; ++i) {
    const auto later = run_one(e, greedy(prompt_of(10 + i, 9), 5));
    EXPECT_EQ(later.finish, FinishReason::kError);
    EXPECT_TRUE(later.tokens.empty());
    EXPECT_TRUE(contains(later.error, "could not be recovered")) << later.error;
    EXPECT_TRUE(contains(later.error, "cannot be reset")) << later.error;
  }
  EXPECT_EQ(e.stats().device_recoveries, 0);
  EXPECT_TRUE(e.stats().device_unusable);  // what /ready (503) and /metrics (rocmforge_device_lost) report
  e.shutdown(std::chrono::milliseconds(100));
}

// The device cannot be reset, but the placement has a fallback (as every GPU placement of device_select has): the
// request in flight fails, the whole model (a split one too) moves to a fresh CPU backend, and queued and later
// requests get the tokens of an undisturbed model. The engine reports the fallback, not a lost device.
TEST_F(EngineDeviceLoss, UnresettableDeviceMovesTheModelToTheFallbackAndServesOn) {
  for (const bool split : {false, true}) {
    SCOPED_TRACE(split ? "layer 0 on the probe, the rest on a CPU backend" : "the whole model on the probe");
    backend::cpu::CpuBackend rest{2};
    const auto prompt_a = prompt_of(21, 3), prompt_b = prompt_of(14, 4), prompt_c = prompt_of(30, 5);
    const auto ref_a = reference_greedy(prompt_a, 40), ref_b = reference_greedy(prompt_b, 7);
    const auto ref_c = reference_greedy(prompt_c, 9);
    model::Placement p;
    p.first = &probe_;
    if (split) {
      p.rest = &rest;
      p.n_first = 1;
    }
    int made = 0;
    p.fallback = [&made]() -> std::unique_ptr<backend::Backend> {
      ++made;
      return std::make_unique<backend::cpu::CpuBackend>(2);
    };
    EngineOptions o;
    o.max_running = 1;
    ASSERT_NO_FATAL_FAILURE(start(std::move(p), o));
    Engine& e = *engine_;
    probe_.fail_resets(true);
    probe_.lose_device_in(2 * per_pass_ + per_pass_ / 2);
    auto a = e.submit({greedy(prompt_a, 40)});
    auto b = e.submit({greedy(prompt_b, 7)});  // queued behind a (max_running 1)
    ASSERT_TRUE(a.ok() && b.ok());
    const auto out_a = collect(a.handles[0]);
    EXPECT_EQ(out_a.finish, FinishReason::kError);
    EXPECT_TRUE(contains(out_a.error, "injected device loss")) << out_a.error;
    ASSERT_LE(out_a.tokens.size(), ref_a.size());
    EXPECT_TRUE(std::equal(out_a.tokens.begin(), out_a.tokens.end(), ref_a.begin()));
    const auto out_b = collect(b.handles[0]);
    EXPECT_EQ(out_b.finish, FinishReason::kLength) << out_b.error;
    EXPECT_EQ(out_b.tokens, ref_b);
    const auto out_c = run_one(e, greedy(prompt_c, 9));
    EXPECT_EQ(out_c.finish, FinishReason::kLength) << out_c.error;
    EXPECT_EQ(out_c.tokens, ref_c);
    EXPECT_EQ(made, 1);
    EXPECT_TRUE(probe_.device_lost());  // the probe stays lost: nothing runs on it any more
    EXPECT_FALSE(contains(model_under_test_->placement_summary(), "probe")) << model_under_test_->placement_summary();
    EXPECT_TRUE(contains(model_under_test_->fallback_reason(), "could not be reset"))
        << model_under_test_->fallback_reason();
    const EngineStats st = e.stats();
    EXPECT_TRUE(st.device_fallback);
    EXPECT_FALSE(st.device_unusable);
    EXPECT_EQ(st.device_recoveries, 0);
    e.shutdown(std::chrono::milliseconds(100));
    engine_.reset();
    model_under_test_.reset();
    probe_.fail_resets(false);
    ASSERT_TRUE(probe_.reset_device().ok());  // the next round starts from a usable probe
  }
}

}  // namespace
}  // namespace rf::runtime
