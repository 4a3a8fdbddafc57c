#include "runtime/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

#include "model/model.h"
#include "model/probe_backend.h"
#include "runtime/engine_fixture.h"
#include "support/tiny_synth_model.h"

namespace rf::runtime {
namespace {

using namespace std::chrono_literals;

TEST_F(EngineTest, SingleSequenceMatchesReferenceGreedy) {
  auto e = make_engine();
  const auto prompt = prompt_of(21, 1);
  const auto out = run_one(*e, greedy(prompt, 12));
  EXPECT_EQ(out.finish, FinishReason::kLength);
  EXPECT_EQ(out.tokens, reference_greedy(prompt, 12));
}

TEST_F(EngineTest, ConcurrentSequencesGiveSameTokensAsAlone) {
  EngineOptions o;
  o.max_running = 8;
  o.step_tokens = 24;  // forces chunked prefill mixed with decode tokens
  std::vector<std::vector<int32_t>> prompts, refs;
  for (int i = 0; i < 10; ++i) {
    prompts.push_back(prompt_of(5 + 7 * i, i));
    refs.push_back(reference_greedy(prompts.back(), 8 + i));
  }
  EXPECT_NE(refs[0], refs[1]);
  EXPECT_GT(std::set<int32_t>(refs[9].begin(), refs[9].end()).size(), 3u);  // not a degenerate repeat
  auto e = make_engine(o);
  std::vector<std::shared_ptr<SequenceHandle>> hs;
  for (int i = 0; i < 10; ++i) {
    auto r = e->submit({greedy(prompts[static_cast<size_t>(i)], 8 + i)});
    ASSERT_TRUE(r.ok()) << r.message;
    hs.push_back(r.handles[0]);
  }
  for (int i = 0; i < 10; ++i) {
    const auto out = collect(hs[static_cast<size_t>(i)]);
    EXPECT_EQ(out.finish, FinishReason::kLength);
    EXPECT_EQ(out.tokens, refs[static_cast<size_t>(i)]) << "sequence " << i;
  }
  const auto st = e->stats();
  EXPECT_GT(st.max_batch_sequences, 1);  // really batched together
  EXPECT_LE(st.max_batch_tokens, 24);
}

TEST_F(EngineTest, PrefixCacheReusesFullBlocksAndKeepsResults) {
  EngineOptions o;
  o.block_size = 8;
  const auto prompt = prompt_of(30, 3);
  auto other = prompt;
  other[17] = 5;
  const auto other_ref = reference_greedy(other, 6);
  auto e = make_engine(o);
  const auto first = run_one(*e, greedy(prompt, 6));
  EXPECT_EQ(first.cached, 0);
  const auto second = run_one(*e, greedy(prompt, 6));
  EXPECT_EQ(second.cached, 24);  // (30 - 1) / 8 full blocks; the last token is always computed
  EXPECT_EQ(second.tokens, first.tokens);
  // A prompt sharing only the first 16 tokens reuses two blocks.
  const auto third = run_one(*e, greedy(other, 6));
  EXPECT_EQ(third.cached, 16);
  EXPECT_EQ(third.tokens, other_ref);
}

// Each batch token carries its kind (Batch::generated: 1 from the prompt's end on). A backend whose results depend
// on it (the GPU backend in batch-invariant mode) gets only prompt blocks into the prefix cache: a prompt that
// holds an earlier answer (a chat's next turn) recomputes the answer's tokens as prompt tokens. Other backends
// reuse the answer's blocks too.
TEST_F(EngineTest, TokensCarryTheirKindAndKindSensitiveBackendsCacheOnlyPromptBlocks) {
  test::ProbeBackend probe(*be_, "probe");
  auto m = model::Model::load(test::tiny_synth_model("engine_test_synth", 320, 256), probe);
  ASSERT_TRUE(m.ok()) << m.error_message();
  EngineOptions o;
  o.ctx_size = 128;
  o.block_size = 8;
  const auto prompt = prompt_of(16, 5);
  for (const bool sensitive : {false, true}) {
    probe.claim_kind_dependence(sensitive);
    probe.kinds().clear();
    auto created = Engine::create(**m, o);
    ASSERT_TRUE(created.ok()) << created.error_message();
    Engine& e = **created;
    const auto first = run_one(e, greedy(prompt, 17));
    ASSERT_EQ(first.tokens.size(), 17u);
    e.stats();  // orders the probe's record after the scheduler thread's passes
    int prompt_tokens = 0, generated_tokens = 0;
    for (const auto& [pos, generated] : probe.kinds()) {
      EXPECT_EQ(generated, pos >= 16) << "position " << pos;
      ++(generated ? generated_tokens : prompt_tokens);
    }
    EXPECT_EQ(prompt_tokens, 16);
    EXPECT_EQ(generated_tokens, 16);  // the last sampled token is never fed back
    auto next = prompt;
    next.insert(next.end(), first.tokens.begin(), first.tokens.end());
    // 33 tokens: up to 4 full blocks can come from the cache (the last token is always computed).
    EXPECT_EQ(run_one(e, greedy(next, 2)).cached, sensitive ? 16 : 32) << (sensitive ? "kind-sensitive" : "plain");
  }
}

TEST_F(EngineTest, WithoutPrefixCacheNothingIsReused) {
  EngineOptions o;
  o.block_size = 8;
  o.prefix_cache = false;
  auto e = make_engine(o);
  const auto prompt = prompt_of(30, 3);
  run_one(*e, greedy(prompt, 2));
  EXPECT_EQ(run_one(*e, greedy(prompt, 2)).cached, 0);
}

TEST_F(EngineTest, ScarceBlocksQueueAndPreemptButEverySequenceFinishesCorrectly) {
  EngineOptions o;
  o.block_size = 4;
  o.ctx_size = 64;
  o.kv_slots = 64;  // 16 blocks for 6 sequences that need 8-12 blocks each
  o.max_running = 6;
  o.prefix_cache = false;
  std::vector<std::vector<int32_t>> prompts, refs;
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(prompt_of(12 + 2 * i, 10 + i));
    refs.push_back(reference_greedy(prompts.back(), 24));
  }
  auto e = make_engine(o);
  std::vector<std::shared_ptr<SequenceHandle>> hs;
  for (int i = 0; i < 6; ++i) {
    auto r = e->submit({greedy(prompts[static_cast<size_t>(i)], 24)});
    ASSERT_TRUE(r.ok());
    hs.push_back(r.handles[0]);
  }
  for (int i = 0; i < 6; ++i) {
    const auto out = collect(hs[static_cast<size_t>(i)]);
    EXPECT_EQ(out.finish, FinishReason::kLength);
    EXPECT_EQ(out.tokens, refs[static_cast<size_t>(i)]) << "sequence " << i;
  }
  const auto st = e->stats();
  EXPECT_GT(st.preemptions, 0);
  wait_idle(*e);
  EXPECT_EQ(e->stats().kv_blocks_used, 0);
}

TEST_F(EngineTest, CancelFreesBlocksAndFinishesCancelled) {
  EngineOptions o;
  o.max_running = 1;
  o.ctx_size = 1 << 15;  // the sequence must not reach the end of its context before the cancel lands
  auto e = make_engine(o);
  auto r = e->submit({greedy(prompt_of(40, 2), 100000)});
  ASSERT_TRUE(r.ok());
  SequenceUpdate u;
  while (u.tokens.empty()) ASSERT_TRUE(r.handles[0]->next(&u, 10s));
  EXPECT_GT(e->stats().kv_blocks_used, 0);
  r.handles[0]->cancel();
  while (u.finish == FinishReason::kNone) ASSERT_TRUE(r.handles[0]->next(&u, 10s));
  EXPECT_EQ(u.finish, FinishReason::kCancelled);
  wait_idle(*e);
  const auto st = e->stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.kv_blocks_used, 0);
}

TEST_F(EngineTest, SeededSamplingIsReproducibleUnderLoad) {
  auto e = make_engine();
  SequenceParams p = greedy(prompt_of(9, 4), 16);
  p.sampler.temperature = 1.0f;
  p.sampler.seed = 1234;
  const auto alone = run_one(*e, p);
  std::vector<std::shared_ptr<SequenceHandle>> noise;
  for (int i = 0; i < 5; ++i) {
    SequenceParams q = greedy(prompt_of(10 + i, 20 + i), 16);
    q.sampler.temperature = 1.0f;
    q.sampler.seed = static_cast<uint64_t>(i);
    noise.push_back(e->submit({q}).handles[0]);
  }
  const auto loaded = run_one(*e, p);
  for (auto& h : noise) collect(h);
  EXPECT_EQ(alone.tokens, loaded.tokens);
  SequenceParams other_seed = p;
  other_seed.sampler.seed = 99;
  EXPECT_NE(run_one(*e, other_seed).tokens, alone.tokens);
}

TEST_F(EngineTest, GroupChoicesShareThePromptBlocks) {
  EngineOptions o;
  o.block_size = 8;
  auto e = make_engine(o);
  std::vector<SequenceParams> group;
  for (int i = 0; i < 3; ++i) {
    SequenceParams p = greedy(prompt_of(33, 6), 8);
    p.sampler.temperature = 0.9f;
    p.sampler.seed = 500 + static_cast<uint64_t>(i);
    group.push_back(p);
  }
  auto r = e->submit(group);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.handles.size(), 3u);
  const auto a = collect(r.handles[0]), b = collect(r.handles[1]), c = collect(r.handles[2]);
  EXPECT_EQ(a.cached, 0);
  EXPECT_EQ(b.cached, 32);
  EXPECT_EQ(c.cached, 32);
  EXPECT_EQ(a.tokens.size(), 8u);
  EXPECT_EQ(b.tokens.size(), 8u);
  EXPECT_TRUE(a.tokens != b.tokens || b.tokens != c.tokens);
}

TEST_F(EngineTest, LogprobsAreNormalizedAndSorted) {
  auto e = make_engine();
  SequenceParams p = greedy(prompt_of(7, 8), 4);
  p.top_logprobs = 3;
  const auto out = run_one(*e, p);
  ASSERT_EQ(out.events.size(), 4u);
  for (const auto& ev : out.events) {
    EXPECT_LE(ev.logprob, 0.0f);
    ASSERT_EQ(ev.top.size(), 3u);
    EXPECT_EQ(ev.top[0].first, ev.token);  // greedy picks the most likely token
    EXPECT_FLOAT_EQ(ev.top[0].second, ev.logprob);
    EXPECT_GE(ev.top[0].second, ev.top[1].second);
    EXPECT_GE(ev.top[1].second, ev.top[2].second);
  }
}

TEST_F(EngineTest, StopTokenFinishesWithStopAndIsNotEmitted) {
  const auto prompt = prompt_of(11, 9);
  const auto ref = reference_greedy(prompt, 3);
  EngineOptions o;
  o.stop_tokens = {ref[2]};
  auto e = make_engine(o);
  const auto out = run_one(*e, greedy(prompt, 10));
  EXPECT_EQ(out.finish, FinishReason::kStop);
  const auto first_stop = std::find(ref.begin(), ref.end(), ref[2]) - ref.begin();
  EXPECT_EQ(out.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + first_stop));
  SequenceParams ignore = greedy(prompt, 3);
  ignore.ignore_eos = true;
  EXPECT_EQ(run_one(*e, ignore).tokens, ref);
}

TEST_F(EngineTest, ContextLimitEndsWithLength) {
  EngineOptions o;
  o.ctx_size = 20;
  auto e = make_engine(o);
  const auto out = run_one(*e, greedy(prompt_of(15, 1), 100));
  EXPECT_EQ(out.finish, FinishReason::kLength);
  EXPECT_EQ(out.tokens.size(), 5u);  // 15 + 5 = the context
}

TEST_F(EngineTest, SubmitRejectsBadInputAndOverload) {
  EngineOptions o;
  // The running sequence must not end by itself before the test cancels it: a 32-token context let it reach
  // kLength after 24 steps (about a millisecond), which a loaded machine easily gives it before the cancel lands
  // (and then a queued one ran and could finish too). With this context and token limit it would need some 32k
  // steps, so only the cancel can end it.
  o.ctx_size = 1 << 15;
  o.max_running = 1;
  o.max_waiting = 2;
  constexpr int32_t kEndless = 1 << 30;
  auto e = make_engine(o);
  EXPECT_EQ(e->submit({greedy({}, 4)}).error, SubmitError::kInvalid);
  EXPECT_EQ(e->submit({greedy(prompt_of(o.ctx_size, 1), 4)}).error, SubmitError::kInvalid);
  EXPECT_EQ(e->submit({greedy({1, 320}, 4)}).error, SubmitError::kInvalid);
  EXPECT_EQ(e->submit({greedy({1, 2}, 0)}).error, SubmitError::kInvalid);
  std::vector<std::shared_ptr<SequenceHandle>> hs;
  SubmitResult last;
  // One sequence runs (max_running 1) and nothing finishes, so the queue is full by the fourth submit at the latest
  // (the third when the scheduler has not admitted the first one yet).
  for (int i = 0; i < 10 && last.ok(); ++i) {
    last = e->submit({greedy(prompt_of(8, i), kEndless)});
    for (auto& h : last.handles) hs.push_back(h);
  }
  EXPECT_EQ(last.error, SubmitError::kOverloaded);
  EXPECT_GE(hs.size(), 2u);
  EXPECT_LE(hs.size(), 3u);
  for (auto& h : hs) h->cancel();
  for (auto& h : hs) EXPECT_EQ(collect(h).finish, FinishReason::kCancelled);
  e->shutdown(0ms);
  EXPECT_EQ(e->submit({greedy({1, 2}, 4)}).error, SubmitError::kShuttingDown);
}

// The grace period is a wall-clock bound, so each test below has its outcome fixed whatever the machine's speed:
// sequences that must finish inside the grace get one far longer than they need (shutdown returns as soon as
// the engine is idle), and sequences that must outlive it cannot end by themselves (32k context, no token limit).
TEST_F(EngineTest, ShutdownWithGraceLetsRunningAndQueuedSequencesFinish) {
  EngineOptions o;
  o.max_running = 1;  // the second one waits in the queue when the shutdown begins
  auto e = make_engine(o);
  auto running = e->submit({greedy(prompt_of(6, 1), 3)});
  auto queued = e->submit({greedy(prompt_of(7, 2), 4)});
  ASSERT_TRUE(running.ok() && queued.ok());
  e->shutdown(60s);  // returns once both have finished
  const auto a = collect(running.handles[0]), b = collect(queued.handles[0]);
  EXPECT_EQ(a.finish, FinishReason::kLength);
  EXPECT_EQ(a.tokens.size(), 3u);
  EXPECT_EQ(b.finish, FinishReason::kLength);
  EXPECT_EQ(b.tokens.size(), 4u);
  EXPECT_EQ(e->stats().kv_blocks_used, 0);
}

TEST_F(EngineTest, ShutdownEndsSequencesThatOutliveTheGraceWithShutdown) {
  EngineOptions o;
  o.ctx_size = 1 << 15;
  o.max_running = 1;
  auto e = make_engine(o);
  auto running = e->submit({greedy(prompt_of(6, 1), 1 << 30)});
  auto queued = e->submit({greedy(prompt_of(6, 2), 1 << 30)});
  ASSERT_TRUE(running.ok() && queued.ok());
  e->shutdown(20ms);
  // Not kCancelled: nobody cancelled them.
  EXPECT_EQ(collect(running.handles[0]).finish, FinishReason::kShutdown);
  EXPECT_EQ(collect(queued.handles[0]).finish, FinishReason::kShutdown);
  EXPECT_EQ(e->stats().kv_blocks_used, 0);
}

// While a shutdown waits out its grace the queue may still be full; a submit then must say the engine is
// shutting down (the caller must not retry), not that it is overloaded.
TEST_F(EngineTest, SubmitDuringShutdownGraceSaysShuttingDownEvenWithFullQueue) {
  EngineOptions o;
  o.ctx_size = 1 << 15;
  o.max_running = 1;
  o.max_waiting = 1;
  auto e = make_engine(o);
  auto running = e->submit({greedy(prompt_of(6, 1), 1 << 30)});
  ASSERT_TRUE(running.ok());
  SubmitResult queued;
  // The queue holds one sequence; it is full once the scheduler has admitted the first one.
  for (int i = 0; i < 5000 && e->stats().running == 0; ++i) std::this_thread::sleep_for(2ms);
  queued = e->submit({greedy(prompt_of(6, 2), 1 << 30)});
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(e->submit({greedy({1, 2}, 4)}).error, SubmitError::kOverloaded);
  std::thread stopper([&] { e->shutdown(60s); });  // waits: nothing can finish by itself
  // Until the shutdown has begun the answer is kOverloaded; from then on it must be kShuttingDown.
  SubmitError seen = SubmitError::kOverloaded;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (seen == SubmitError::kOverloaded && std::chrono::steady_clock::now() < deadline) {
    seen = e->submit({greedy({1, 2}, 4)}).error;
    if (seen == SubmitError::kOverloaded) std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(seen, SubmitError::kShuttingDown);
  int other_answers = 0;
  for (int i = 0; i < 20; ++i) other_answers += e->submit({greedy({1, 2}, 4)}).error != SubmitError::kShuttingDown;
  EXPECT_EQ(other_answers, 0);
  // Ending both sequences makes the engine idle, which ends the grace wait early.
  running.handles[0]->cancel();
  queued.handles[0]->cancel();
  stopper.join();
  EXPECT_EQ(collect(running.handles[0]).finish, FinishReason::kCancelled);
  EXPECT_EQ(collect(queued.handles[0]).finish, FinishReason::kCancelled);
  EXPECT_EQ(e->submit({greedy({1, 2}, 4)}).error, SubmitError::kShuttingDown);
}

// A forward pass that fails (a backend error, as a GPU reports a failed kernel; injected by tests/model's
// ProbeBackend): the sequences of its batch end with kError and a message, their blocks are freed, and a queued
// sequence and later ones run as if nothing happened.
TEST_F(EngineTest, FailingForwardPassEndsItsBatchAndTheEngineGoesOn) {
  const auto prompt_a = prompt_of(20, 1), prompt_b = prompt_of(12, 2), prompt_c = prompt_of(15, 3);
  const auto ref_b = reference_greedy(prompt_b, 6), ref_c = reference_greedy(prompt_c, 5);
  const auto ref_a = reference_greedy(prompt_a, 3);
  test::ProbeBackend probe(*be_, "probe");
  auto m = model::Model::load(test::tiny_synth_model("engine_test_synth", 320, 256), probe);
  ASSERT_TRUE(m.ok()) << m.error_message();
  EngineOptions o;
  o.ctx_size = 128;
  o.max_running = 1;
  auto created = Engine::create(**m, o);
  ASSERT_TRUE(created.ok()) << created.error_message();
  Engine& e = **created;
  // Ops of one pass: a one-token generation is one pass (measured after a first pass that may set things up).
  // stats() orders the probe's counters after the scheduler thread's passes; it is idle between the runs.
  run_one(e, greedy(prompt_of(9, 4), 1));
  e.stats();
  const int64_t before = probe.ops_seen();
  run_one(e, greedy(prompt_of(9, 4), 1));
  e.stats();
  const int64_t per_pass = probe.ops_seen() - before;
  ASSERT_GT(per_pass, 0);
  // Armed while idle: the fault lands in the middle of the fourth pass, after a has generated 3 tokens.
  probe.fail_op_in(3 * per_pass + per_pass / 2);
  auto a = e.submit({greedy(prompt_a, 50)});
  auto b = e.submit({greedy(prompt_b, 6)});  // queued behind a (max_running 1): not in the failing batch
  ASSERT_TRUE(a.ok() && b.ok());
  const auto out_a = collect(a.handles[0]);
  EXPECT_EQ(out_a.finish, FinishReason::kError);
  EXPECT_EQ(out_a.tokens, ref_a);
  EXPECT_NE(out_a.error.find("forward pass failed"), std::string::npos) << out_a.error;
  EXPECT_NE(out_a.error.find("injected fault"), std::string::npos) << out_a.error;
  const auto out_b = collect(b.handles[0]);
  EXPECT_EQ(out_b.finish, FinishReason::kLength);
  EXPECT_EQ(out_b.tokens, ref_b);
  const auto out_c = run_one(e, greedy(prompt_c, 5));
  EXPECT_EQ(out_c.finish, FinishReason::kLength);
  EXPECT_EQ(out_c.tokens, ref_c);
  wait_idle(e);
  EXPECT_EQ(e.stats().kv_blocks_used, 0);
}

}  // namespace
}  // namespace rf::runtime
