// Backend errors during a forward pass (Backend::take_error, as a GPU backend reports a failed launch or kernel
// fault): Model::forward returns a clear error naming the backend, the logits stay empty, and the next pass on a
// fresh batch runs normally (bit-for-bit the logits of an undisturbed model). Faults come from ProbeBackend.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "model/hybrid_support.h"
#include "model/model.h"
#include "model/probe_backend.h"
#include "support/shared_data.h"

namespace rf::test {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

class ForwardErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    auto path = shared_path("models/stories260K.gguf");
    if (!path) GTEST_SKIP() << "shared data 'models/stories260K.gguf' not found (set ROCMFORGE_SHARED)";
    auto f = gguf::File::open(*path);
    ASSERT_TRUE(f.ok()) << f.error_message();
    file_ = *f;
    auto ref = model::Model::load(file_, cpu_ref_);
    ASSERT_TRUE(ref.ok()) << ref.error_message();
    script_ = default_script((*ref)->hparams().n_vocab);
    auto cache = make_cache(**ref);
    auto want = run_script(**ref, *cache, script_);
    ASSERT_TRUE(want.ok()) << want.error_message();
    want_ = *want;
  }

  // The script runs cleanly and gives the reference logits.
  void expect_clean_run(model::Model& m, kv::KvCache& cache) {
    auto got = run_script(m, cache, script_);
    ASSERT_TRUE(got.ok()) << got.error_message();
    EXPECT_EQ(*got, want_);
    EXPECT_EQ(cache.n_free_blocks(), cache.n_blocks());
  }

  backend::cpu::CpuBackend cpu_ref_{2}, cpu_a_{2}, cpu_b_{2};
  std::shared_ptr<gguf::File> file_;
  std::vector<ScriptStep> script_;
  std::vector<std::vector<float>> want_;
};

TEST_F(ForwardErrors, AFailedOpFailsThePassWithTheBackendsMessageAndTheNextPassSucceeds) {
  ProbeBackend probe(cpu_a_, "probe");
  auto m = model::Model::load(file_, probe);
  ASSERT_TRUE(m.ok()) << m.error_message();
  auto cache = make_cache(**m);
  ASSERT_NE(cache, nullptr);
  ASSERT_NO_FATAL_FAILURE(expect_clean_run(**m, *cache));
  const int64_t ops_per_script = probe.ops();
  // First op (embed), inside the prefill, inside a later decode step, the last op of the script (the download).
  for (int64_t k : {int64_t{0}, int64_t{17}, ops_per_script * 3 / 4, ops_per_script - 1}) {
    SCOPED_TRACE("fault at op " + std::to_string(k));
    const int64_t index = probe.ops_seen() + k;
    probe.fail_op_in(k);
    auto r = run_script(**m, *cache, script_);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error_message(), "model: forward pass on probe")) << r.error_message();
    EXPECT_TRUE(contains(r.error_message(), "injected fault in op " + std::to_string(index))) << r.error_message();
    ASSERT_NO_FATAL_FAILURE(expect_clean_run(**m, *cache));
  }
}

TEST_F(ForwardErrors, TheLogitsOfAFailedPassAreEmpty) {
  ProbeBackend probe(cpu_a_, "probe");
  auto m = model::Model::load(file_, probe);
  ASSERT_TRUE(m.ok());
  auto cache = make_cache(**m);
  const int32_t seq = cache->add_sequence();
  ASSERT_TRUE(cache->reserve(seq, 2).ok());
  backend::Batch b;
  b.tokens = {1, 2};
  b.positions = {0, 1};
  b.seq = {0, 0};
  b.output_rows = {0, 1};
  b.block_tables = {cache->block_table(seq)};
  std::vector<float> logits(7, 1.0f);
  probe.fail_op_in(5);
  const Status s = (*m)->forward(b, *cache, &logits);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(logits.empty());
  EXPECT_TRUE((*m)->forward(b, *cache, &logits).ok());  // the same batch again: the error was taken
  EXPECT_EQ(logits.size(), 2u * static_cast<size_t>((*m)->hparams().n_vocab));
}

TEST_F(ForwardErrors, AFaultOnEitherSideOfASplitNamesThatBackend) {
  ProbeBackend a(cpu_a_, "probe-a"), b(cpu_b_, "probe-b");
  model::Placement p;
  p.first = &a;
  p.rest = &b;
  p.n_first = 2;
  auto m = model::Model::load(file_, std::move(p));
  ASSERT_TRUE(m.ok()) << m.error_message();
  auto cache = make_cache(**m);
  ASSERT_NO_FATAL_FAILURE(expect_clean_run(**m, *cache));
  for (ProbeBackend* side : {&a, &b}) {
    const std::string tag = side == &a ? "probe-a" : "probe-b";
    SCOPED_TRACE(tag);
    side->fail_op_in(side->ops() > 0 ? 9 : 0);
    auto r = run_script(**m, *cache, script_);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error_message(), tag + ": injected fault")) << r.error_message();
    EXPECT_TRUE(contains(r.error_message(), "model: forward pass on " + tag)) << r.error_message();
    ASSERT_NO_FATAL_FAILURE(expect_clean_run(**m, *cache));
  }
}

TEST_F(ForwardErrors, WorkspaceThatCannotBeAllocatedFailsThePassNotTheProcess) {
  ProbeBackend probe(cpu_a_, "probe");
  auto m = model::Model::load(file_, probe);
  ASSERT_TRUE(m.ok());
  auto cache = make_cache(**m);
  ASSERT_NE(cache, nullptr);
  probe.fail_next_alloc();  // the first pass allocates the workspace
  auto r = run_script(**m, *cache, script_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error_message(), "bytes of workspace")) << r.error_message();
  EXPECT_TRUE(contains(r.error_message(), "injected fault: cannot allocate")) << r.error_message();
  ASSERT_NO_FATAL_FAILURE(expect_clean_run(**m, *cache));
}

TEST_F(ForwardErrors, AKvCacheThatCannotBeAllocatedIsAnError) {
  ProbeBackend probe(cpu_a_, "probe");
  auto m = model::Model::load(file_, probe);
  ASSERT_TRUE(m.ok());
  probe.fail_next_alloc();
  kv::KvOptions o;
  o.n_slots = 64;
  auto c = kv::KvCache::create(probe, (*m)->kv_shape(), o);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.error_message(), "kv: cannot allocate the K cache of layer 0")) << c.error_message();
}

}  // namespace
}  // namespace rf::test
