// The qwen2moe architecture: loading (hyper-parameter defaults, errors naming missing or misshapen tensors) and
// the forward pass's logits against an independent float64 reference over the same random F32 weights, for a
// prefill and decode steps, also on a model from `rocmforge synth --arch qwen2moe`. Wrong variants of the graph
// (renormalised routing, no shared expert, an ungated shared expert) are computed too and must differ from the
// engine by far more than the tolerance, so the comparison tells the real graph from plausible wrong ones.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "cli/synth.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "model/offload_plan.h"
#include "model/tiny_qwen2moe.h"

namespace rf::test {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Runs `tokens` as one sequence: a prefill of the first n_prefill tokens (logits of every row), then one decode
// step per remaining token. Returns the logits of every token, in order.
Expected<std::vector<std::vector<float>>> run_sequence(model::Model& m, const std::vector<int32_t>& tokens,
                                                       size_t n_prefill) {
  kv::KvOptions o;
  o.n_slots = 64;
  o.block_size = 4;  // several blocks: the prefill crosses block boundaries
  o.type = quant::Type::F32;
  auto cache = kv::KvCache::create(m.backend(), m.kv_shape(), o);
  if (!cache) return cache.status();
  kv::KvCache& c = **cache;
  const int32_t seq = c.add_sequence();
  std::vector<std::vector<float>> out;
  size_t next = 0;
  while (next < tokens.size()) {
    const size_t n = next == 0 ? n_prefill : 1;
    RF_RETURN_IF_ERROR(c.reserve(seq, static_cast<int32_t>(n)));
    backend::Batch b;
    b.block_tables.push_back(c.block_table(seq));
    for (size_t i = 0; i < n; ++i) {
      b.tokens.push_back(tokens[next + i]);
      b.positions.push_back(static_cast<int32_t>(next + i));
      b.seq.push_back(0);
      b.output_rows.push_back(static_cast<int32_t>(i));
    }
    std::vector<float> logits;
    RF_RETURN_IF_ERROR(m.forward(std::move(b), c, &logits));
    c.advance(seq, static_cast<int32_t>(n));
    const size_t v = static_cast<size_t>(m.hparams().n_vocab);
    for (size_t i = 0; i < n; ++i)
      out.emplace_back(logits.begin() + static_cast<std::ptrdiff_t>(i * v),
                       logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * v));
    next += n;
  }
  return out;
}

// Largest |got - want| over a row, relative to the row's largest |want|.
double row_rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0.0, scale = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / std::max(scale, 1e-30);
}

constexpr double kTolerance = 1e-4;  // relative; F32 weights, so only float rounding differs from the reference

class Qwen2Moe : public ::testing::Test {
 protected:
  Expected<std::unique_ptr<model::Model>> load(const TinyQwen2MoeSpec& spec, TinyModel* tm) {
    auto t = make_tiny_qwen2moe(spec);
    if (!t) return t.status();
    *tm = std::move(*t);
    return model::Model::load(tm->file, cpu_);
  }

  // The engine's logits for a 5-token prefill and 2 decode steps match the reference's.
  void expect_matches_reference(const TinyQwen2MoeSpec& spec) {
    TinyModel tm;
    auto m = load(spec, &tm);
    ASSERT_TRUE(m.ok()) << m.error_message();
    const std::vector<int32_t> tokens = {3, 17, 40, 5, 29, 11, 46};
    auto got = run_sequence(**m, tokens, 5);
    ASSERT_TRUE(got.ok()) << got.error_message();
    const auto want = reference_logits(spec, tm.weights, tokens);
    ASSERT_EQ(got->size(), want.size());
    for (size_t t = 0; t < want.size(); ++t) {
      EXPECT_LE(row_rel_error((*got)[t], want[t]), kTolerance) << "token " << t << (t < 5 ? " (prefill)" : " (decode)");
    }
  }

  backend::cpu::CpuBackend cpu_{2};
};

TEST_F(Qwen2Moe, ReadsTheExpertWidthsAndDoesNotRenormaliseTheRouting) {
  TinyModel tm;
  auto m = load(TinyQwen2MoeSpec{}, &tm);
  ASSERT_TRUE(m.ok()) << m.error_message();
  const model::HParams& h = (*m)->hparams();
  EXPECT_EQ(h.n_expert, 6);
  EXPECT_EQ(h.n_expert_used, 2);
  EXPECT_EQ(h.n_ff_exp, 32);
  EXPECT_EQ(h.n_ff_shexp, 64);
  EXPECT_FALSE(h.expert_weights_norm);
  EXPECT_EQ(h.rope_mode, backend::RopeMode::kNeox);
}

TEST_F(Qwen2Moe, LogitsMatchAFloat64ReferenceForPrefillAndDecode) { expect_matches_reference(TinyQwen2MoeSpec{}); }

TEST_F(Qwen2Moe, LogitsMatchWithOtherShapesAndAllExpertsUsed) {
  TinyQwen2MoeSpec s;
  s.n_layer = 3;
  s.n_head = 8;
  s.n_head_kv = 8;
  s.n_expert = 4;
  s.n_expert_used = 4;  // routing weights sum to 1 anyway: the shared expert and attention still checked
  s.n_ff_exp = 64;
  s.n_ff_shexp = 32;
  s.seed = 11;
  expect_matches_reference(s);
}

TEST_F(Qwen2Moe, TheReferenceTellsTheRealGraphFromWrongVariants) {
  const TinyQwen2MoeSpec spec;
  TinyModel tm;
  auto m = load(spec, &tm);
  ASSERT_TRUE(m.ok()) << m.error_message();
  const std::vector<int32_t> tokens = {3, 17, 40, 5, 29, 11};
  auto got = run_sequence(**m, tokens, 5);
  ASSERT_TRUE(got.ok()) << got.error_message();
  const std::vector<std::pair<const char*, ReferenceVariant>> wrong = {
      {"renormalised routing", {.renormalize_experts = true}},
      {"no shared expert", {.shared_expert = false}},
      {"ungated shared expert", {.shared_gate = false}},
  };
  for (const auto& [what, variant] : wrong) {
    const auto want = reference_logits(spec, tm.weights, tokens, variant);
    double worst = 0.0;
    for (size_t t = 0; t < want.size(); ++t) worst = std::max(worst, row_rel_error((*got)[t], want[t]));
    EXPECT_GT(worst, 100 * kTolerance) << what;
  }
}

TEST_F(Qwen2Moe, WidthsDefaultToFeedForwardLengthWhenTheExpertKeysAreAbsent) {
  TinyQwen2MoeSpec s;
  s.write_exp_key = false;
  s.write_shexp_key = false;
  s.n_ff = 64;      // shared width, and 64 / expert_used_count = 32 per routed expert
  s.n_ff_exp = 32;  // the shapes the tensors are written with
  s.n_ff_shexp = 64;
  TinyModel tm;
  auto m = load(s, &tm);
  ASSERT_TRUE(m.ok()) << m.error_message();
  EXPECT_EQ((*m)->hparams().n_ff_exp, 32);
  EXPECT_EQ((*m)->hparams().n_ff_shexp, 64);
  expect_matches_reference(s);
}

TEST_F(Qwen2Moe, AMissingTensorIsNamed) {
  for (const std::string name :
       {"blk.1.ffn_gate_inp_shexp.weight", "blk.0.ffn_gate_shexp.weight", "blk.0.ffn_up_shexp.weight",
        "blk.1.ffn_down_shexp.weight", "blk.0.ffn_gate_exps.weight", "blk.1.ffn_gate_inp.weight", "blk.0.attn_q.bias",
        "blk.1.attn_v.bias"}) {
    TinyQwen2MoeSpec s;
    s.omit = {name};
    TinyModel tm;
    auto m = load(s, &tm);
    ASSERT_FALSE(m.ok()) << name;
    EXPECT_TRUE(contains(m.error_message(), "'" + name + "' is missing")) << m.error_message();
  }
}

TEST_F(Qwen2Moe, AMisshapenSharedExpertTensorIsNamedWithBothShapes) {
  TinyQwen2MoeSpec s;
  s.reshape["blk.0.ffn_up_shexp.weight"] = {64, 32};  // 32 rows, the shared width is 64
  TinyModel tm;
  auto m = load(s, &tm);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(
      contains(m.error_message(), "'blk.0.ffn_up_shexp.weight' has shape [64, 32, 1, 1], expected [64, 64, 1, 1]"))
      << m.error_message();
}

TEST_F(Qwen2Moe, RoutedExpertsUseTheExpertWidthNotFeedForwardLength) {
  TinyQwen2MoeSpec s;
  s.override_keys["expert_feed_forward_length"] = 48;  // the tensors are written 32 wide
  TinyModel tm;
  auto m = load(s, &tm);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(
      contains(m.error_message(), "'blk.0.ffn_gate_exps.weight' has shape [64, 32, 6, 1], expected [64, 48, 6, 1]"))
      << m.error_message();
}

TEST_F(Qwen2Moe, ZeroExpertsIsRefused) {
  TinyQwen2MoeSpec s;
  s.override_keys["expert_count"] = 0;
  s.override_keys["expert_used_count"] = 0;
  TinyModel tm;
  auto m = load(s, &tm);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(contains(m.error_message(), "qwen2moe.expert_count must be positive")) << m.error_message();
}

TEST_F(Qwen2Moe, TheOffloadBudgetCountsTheSharedExpertWorkspace) {
  TinyModel with, without;
  auto a = make_tiny_qwen2moe(TinyQwen2MoeSpec{});
  ASSERT_TRUE(a.ok()) << a.error_message();
  TinyQwen2MoeSpec narrow;
  narrow.n_ff_shexp = 32;
  auto b = make_tiny_qwen2moe(narrow);
  ASSERT_TRUE(b.ok()) << b.error_message();
  model::OffloadRequest r;
  r.batch_tokens = 8;
  auto wide_budget = model::offload_budget(*a->file, r);
  auto narrow_budget = model::offload_budget(*b->file, r);
  ASSERT_TRUE(wide_budget.ok()) << wide_budget.error_message();
  ASSERT_TRUE(narrow_budget.ok()) << narrow_budget.error_message();
  // Two rows of the shared width per token: (64 - 32) * 2 floats * 8 tokens more.
  EXPECT_EQ(wide_budget->layer_workspace_bytes - narrow_budget->layer_workspace_bytes, size_t{32 * 2 * 4 * 8});
}

TEST_F(Qwen2Moe, ASynthModelLoadsAndMatchesTheReference) {
  cli::SynthOptions o;
  o.arch = "qwen2moe";
  o.n_embd = 64;
  o.n_ff = 32;
  o.n_ff_shexp = 96;
  o.n_layer = 2;
  o.n_head = 4;
  o.n_head_kv = 2;
  o.n_vocab = 300;
  o.n_expert = 4;
  o.n_expert_used = 2;
  o.n_ctx = 64;
  o.type = "F32";
  o.threads = 2;
  o.output = ::testing::TempDir() + "/rf_qwen2moe_synth_" + std::to_string(::getpid()) + ".gguf";
  const Status written = cli::write_synth_model(o);
  ASSERT_TRUE(written.ok()) << written.message();
  auto file = gguf::File::open(o.output);
  std::remove(o.output.c_str());  // the mapping stays valid
  ASSERT_TRUE(file.ok()) << file.error_message();
  auto m = model::Model::load(*file, cpu_);
  ASSERT_TRUE(m.ok()) << m.error_message();
  EXPECT_EQ((*m)->hparams().n_ff_exp, 32);
  EXPECT_EQ((*m)->hparams().n_ff_shexp, 96);

  TinyWeights w;  // the file's F32 tensors, for the reference
  for (const gguf::TensorInfo& t : (*file)->tensors()) {
    ASSERT_EQ(t.type, quant::Type::F32) << t.name;
    TinyTensor tt;
    tt.ne.assign(t.ne.begin(), t.ne.begin() + std::max(t.n_dims, 1));
    tt.data.resize(t.n_bytes / sizeof(float));
    std::memcpy(tt.data.data(), t.data, t.n_bytes);
    w.emplace(t.name, std::move(tt));
  }
  TinyQwen2MoeSpec spec;  // the shape the reference needs
  spec.n_layer = 2;
  spec.n_embd = 64;
  spec.n_head = 4;
  spec.n_head_kv = 2;
  spec.n_expert_used = 2;
  spec.rms_eps = 1e-5f;
  spec.rope_base = o.rope_base;
  const std::vector<int32_t> tokens = {1, 250, 77, 9, 180, 42};
  auto got = run_sequence(**m, tokens, 4);
  ASSERT_TRUE(got.ok()) << got.error_message();
  const auto want = reference_logits(spec, w, tokens);
  for (size_t t = 0; t < want.size(); ++t) EXPECT_LE(row_rel_error((*got)[t], want[t]), kTolerance) << "token " << t;
}

}  // namespace
}  // namespace rf::test
