// Rope scaling keys (<arch>.rope.scaling.*): what read_hparams makes of yarn / linear / none / absent types, the
// errors for bad values (each naming its key), and greedy generation on a yarn-scaled tiny synth model past its
// original context: finite logits, the same as linear scaling when the yarn ramp is switched off
// (yarn_ext_factor 0), different when it is on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "gguf/writer.h"
#include "kv/kv_cache.h"
#include "model/hparams.h"
#include "model/model.h"
#include "support/tiny_synth_model.h"

namespace rf::model {
namespace {

using Kvs = std::vector<std::pair<std::string, gguf::Value>>;

// A metadata-only llama GGUF: 2 layers, 8 heads of 16, context 16384, plus `extra` keys.
Expected<std::shared_ptr<gguf::File>> header_with(const Kvs& extra, std::vector<uint8_t>* bytes) {
  gguf::Writer w;
  const Kvs base = {{"general.architecture", std::string("llama")},
                    {"llama.block_count", uint32_t{2}},
                    {"llama.embedding_length", uint32_t{128}},
                    {"llama.attention.head_count", uint32_t{8}},
                    {"llama.context_length", uint32_t{16384}}};
  for (const auto& kvs : {base, extra}) {
    for (const auto& [k, v] : kvs) RF_RETURN_IF_ERROR(w.add(k, v));
  }
  RF_RETURN_IF_ERROR(w.begin_memory());
  RF_RETURN_IF_ERROR(w.finish());
  *bytes = w.take_memory();
  return gguf::File::parse(*bytes, "rope-scaling-header");
}

Expected<HParams> hparams_with(const Kvs& extra) {
  std::vector<uint8_t> bytes;
  auto f = header_with(extra, &bytes);
  if (!f) return f.status();
  return read_hparams(**f, "llama");
}

// YaRN's magnitude correction, written out: 1 + 0.1 k ln(s) for s > 1.
double mscale(double s, double k) { return s <= 1.0 ? 1.0 : 1.0 + 0.1 * k * std::log(s); }

TEST(RopeScalingKeys, YarnReadsFactorOriginalContextAndDefaults) {
  auto hp = hparams_with({{"llama.rope.scaling.type", std::string("yarn")},
                          {"llama.rope.scaling.factor", 4.0f},
                          {"llama.rope.scaling.original_context_length", uint32_t{4096}}});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_FLOAT_EQ(hp->rope_freq_scale, 0.25f);
  EXPECT_EQ(hp->rope_ext_factor, 1.0f);
  EXPECT_EQ(hp->rope_yarn_beta_fast, 32.0f);
  EXPECT_EQ(hp->rope_yarn_beta_slow, 1.0f);
  EXPECT_EQ(hp->rope_n_ctx_orig, 4096);
  EXPECT_EQ(hp->n_ctx_train, 16384);
  EXPECT_NEAR(hp->rope_attn_factor, mscale(4.0, 1.0), 1e-6);

  // Without original_context_length the training context is the original one.
  hp = hparams_with({{"llama.rope.scaling.type", std::string("yarn")}, {"llama.rope.scaling.factor", 8.0f}});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_EQ(hp->rope_n_ctx_orig, 16384);
  EXPECT_NEAR(hp->rope_attn_factor, mscale(8.0, 1.0), 1e-6);
}

TEST(RopeScalingKeys, YarnOverridesAttnFactorRampAndLogMultiplier) {
  auto hp = hparams_with({{"llama.rope.scaling.type", std::string("yarn")},
                          {"llama.rope.scaling.factor", 8.0f},
                          {"llama.rope.scaling.attn_factor", 0.75f},
                          {"llama.rope.scaling.yarn_ext_factor", 0.5f},
                          {"llama.rope.scaling.yarn_beta_fast", 16.0f},
                          {"llama.rope.scaling.yarn_beta_slow", 2.0f},
                          {"llama.rope.scaling.yarn_log_multiplier", 0.1f}});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_FLOAT_EQ(hp->rope_freq_scale, 0.125f);
  EXPECT_EQ(hp->rope_ext_factor, 0.5f);
  EXPECT_EQ(hp->rope_yarn_beta_fast, 16.0f);
  EXPECT_EQ(hp->rope_yarn_beta_slow, 2.0f);
  EXPECT_NEAR(hp->rope_attn_factor, 0.75 * mscale(8.0, 1.0) / mscale(8.0, 0.1), 1e-6);

  // Ramp off: no magnitude correction either (only the attn_factor key), as for linear scaling.
  hp = hparams_with({{"llama.rope.scaling.type", std::string("yarn")},
                     {"llama.rope.scaling.factor", 8.0f},
                     {"llama.rope.scaling.attn_factor", 0.75f},
                     {"llama.rope.scaling.yarn_ext_factor", 0.0f}});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_EQ(hp->rope_ext_factor, 0.0f);
  EXPECT_EQ(hp->rope_attn_factor, 0.75f);
}

TEST(RopeScalingKeys, LinearNoneAndAbsentTypes) {
  auto hp = hparams_with({{"llama.rope.scaling.type", std::string("linear")}, {"llama.rope.scaling.factor", 2.0f}});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_EQ(hp->rope_freq_scale, 0.5f);
  EXPECT_EQ(hp->rope_ext_factor, 0.0f);
  EXPECT_EQ(hp->rope_attn_factor, 1.0f);
  // No type: a factor (or the older rope.scale_linear) means linear scaling.
  hp = hparams_with({{"llama.rope.scaling.factor", 4.0f}});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_EQ(hp->rope_freq_scale, 0.25f);
  hp = hparams_with({{"llama.rope.scale_linear", 2.0f}});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_EQ(hp->rope_freq_scale, 0.5f);
  // "none" never scales; attn_factor applies whatever the type.
  hp = hparams_with({{"llama.rope.scaling.type", std::string("none")},
                     {"llama.rope.scaling.factor", 4.0f},
                     {"llama.rope.scaling.attn_factor", 1.5f}});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_EQ(hp->rope_freq_scale, 1.0f);
  EXPECT_EQ(hp->rope_ext_factor, 0.0f);
  EXPECT_EQ(hp->rope_attn_factor, 1.5f);
  hp = hparams_with({});
  ASSERT_TRUE(hp.ok()) << hp.error_message();
  EXPECT_EQ(hp->rope_freq_scale, 1.0f);
  EXPECT_EQ(hp->rope_attn_factor, 1.0f);
  EXPECT_EQ(hp->rope_ext_factor, 0.0f);
}

TEST(RopeScalingKeys, BadValuesAreErrorsNamingTheKey) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const gguf::Value yarn = std::string("yarn");
  struct Bad {
    Kvs kvs;
    std::string key;  // must appear in the message
  };
  const std::vector<Bad> cases = {
      {{{"llama.rope.scaling.type", yarn}}, "llama.rope.scaling.factor"},
      {{{"llama.rope.scaling.type", yarn}, {"llama.rope.scaling.factor", 0.0f}}, "llama.rope.scaling.factor"},
      {{{"llama.rope.scaling.type", yarn}, {"llama.rope.scaling.factor", -4.0f}}, "llama.rope.scaling.factor"},
      {{{"llama.rope.scaling.type", yarn}, {"llama.rope.scaling.factor", nan}}, "llama.rope.scaling.factor"},
      {{{"llama.rope.scaling.type", yarn}, {"llama.rope.scaling.factor", inf}}, "llama.rope.scaling.factor"},
      {{{"llama.rope.scaling.type", yarn}, {"llama.rope.scaling.factor", uint32_t{4}}}, "llama.rope.scaling.factor"},
      {{{"llama.rope.scaling.type", yarn},
        {"llama.rope.scaling.factor", 4.0f},
        {"llama.rope.scaling.original_context_length", uint32_t{0}}},
       "llama.rope.scaling.original_context_length"},
      {{{"llama.rope.scaling.type", yarn},
        {"llama.rope.scaling.factor", 4.0f},
        {"llama.rope.scaling.original_context_length", uint32_t{0x80000000u}}},
       "llama.rope.scaling.original_context_length"},
      {{{"llama.rope.scaling.type", yarn},
        {"llama.rope.scaling.factor", 4.0f},
        {"llama.rope.scaling.yarn_beta_fast", 0.0f}},
       "llama.rope.scaling.yarn_beta_fast"},
      {{{"llama.rope.scaling.type", yarn},
        {"llama.rope.scaling.factor", 4.0f},
        {"llama.rope.scaling.yarn_beta_slow", -1.0f}},
       "llama.rope.scaling.yarn_beta_slow"},
      {{{"llama.rope.scaling.type", yarn},
        {"llama.rope.scaling.factor", 4.0f},
        {"llama.rope.scaling.yarn_ext_factor", inf}},
       "llama.rope.scaling.yarn_ext_factor"},
      {{{"llama.rope.scaling.type", yarn},
        {"llama.rope.scaling.factor", 4.0f},
        {"llama.rope.scaling.yarn_log_multiplier", -0.5f}},
       "llama.rope.scaling.yarn_log_multiplier"},
      {{{"llama.rope.scaling.type", yarn}, {"llama.rope.scaling.factor", 4.0f}, {"llama.rope.freq_base", 1.0f}},
       "llama.rope.freq_base"},
      {{{"llama.rope.scaling.type", yarn},
        {"llama.rope.scaling.factor", 4.0f},
        {"llama.rope.scaling.attn_factor", 0.0f}},
       "llama.rope.scaling.attn_factor"},
      {{{"llama.rope.scaling.attn_factor", -1.0f}}, "llama.rope.scaling.attn_factor"},
      {{{"llama.rope.scaling.type", std::string("linear")}, {"llama.rope.scaling.factor", -2.0f}},
       "llama.rope.scaling.factor"},
      {{{"llama.rope.scaling.type", std::string("longrope")}, {"llama.rope.scaling.factor", 4.0f}},
       "llama.rope.scaling.type"},
  };
  for (const auto& c : cases) {
    const auto hp = hparams_with(c.kvs);
    ASSERT_FALSE(hp.ok()) << "accepted a bad value of " << c.key;
    EXPECT_NE(hp.error_message().find(c.key), std::string::npos) << hp.error_message();
  }
}

// The tiny synth model with `extra` metadata added (existing keys replaced), in memory.
Expected<std::shared_ptr<gguf::File>> synth_with(const Kvs& extra, std::vector<uint8_t>* bytes) {
  const std::string path = test::tiny_synth_model("rope_scaling_test", 320, 256);
  auto src = gguf::File::open(path);
  if (!src) return src.status();
  const gguf::File& f = **src;
  gguf::Writer w;
  for (const auto& kv : f.metadata()) {
    bool replaced = kv.key == "general.alignment";
    for (const auto& e : extra) replaced = replaced || e.first == kv.key;
    if (!replaced) RF_RETURN_IF_ERROR(w.add(kv.key, kv.value));
  }
  for (const auto& [k, v] : extra) RF_RETURN_IF_ERROR(w.add(k, v));
  for (const auto& t : f.tensors()) {
    RF_RETURN_IF_ERROR(w.add_tensor(t.name, t.type,
                                    std::span<const int64_t>(t.ne.data(), static_cast<size_t>(std::max(t.n_dims, 1)))));
  }
  RF_RETURN_IF_ERROR(w.begin_memory());
  for (const auto& t : f.tensors()) RF_RETURN_IF_ERROR(w.write_tensor(t.name, {t.data, t.n_bytes}));
  RF_RETURN_IF_ERROR(w.finish());
  *bytes = w.take_memory();
  return gguf::File::parse(*bytes, "rope-scaling(" + path + ")");
}

// Greedy generation from a 12-token prompt to position n_pos - 1, one token per forward after the prefill; the
// logits of every step, each checked finite.
std::vector<std::vector<float>> greedy_logits(const Kvs& extra, int n_pos) {
  std::vector<uint8_t> bytes;
  auto file = synth_with(extra, &bytes);
  EXPECT_TRUE(file.ok()) << file.error_message();
  if (!file.ok()) return {};
  backend::cpu::CpuBackend be(2);
  auto m = Model::load(*file, be);
  EXPECT_TRUE(m.ok()) << m.error_message();
  if (!m.ok()) return {};
  kv::KvOptions o;
  o.n_slots = n_pos + 16;
  auto cache = kv::KvCache::create(be, (*m)->kv_shape(), o);
  EXPECT_TRUE(cache.ok()) << cache.error_message();
  if (!cache.ok()) return {};
  const int32_t seq = (*cache)->add_sequence();
  std::vector<int32_t> feed;
  for (int32_t i = 0; i < 12; ++i) feed.push_back((i * 37 + 5) % 320);
  std::vector<std::vector<float>> steps;
  int32_t pos = 0;
  while (pos < n_pos) {
    EXPECT_TRUE((*cache)->reserve(seq, static_cast<int32_t>(feed.size())).ok());
    backend::Batch b;
    b.block_tables.push_back((*cache)->block_table(seq));
    for (size_t j = 0; j < feed.size(); ++j) {
      b.tokens.push_back(feed[j]);
      b.positions.push_back(pos + static_cast<int32_t>(j));
      b.seq.push_back(0);
    }
    b.output_rows = {static_cast<int32_t>(feed.size()) - 1};
    std::vector<float> logits;
    const Status s = (*m)->forward(std::move(b), **cache, &logits);
    EXPECT_TRUE(s.ok()) << s.message();
    if (!s.ok()) return {};
    (*cache)->advance(seq, static_cast<int32_t>(feed.size()));
    pos += static_cast<int32_t>(feed.size());
    for (float v : logits) {
      if (!std::isfinite(v)) {
        ADD_FAILURE() << "non-finite logit at position " << pos - 1;
        return {};
      }
    }
    int32_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i) {
      if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
    }
    feed = {best};
    steps.push_back(std::move(logits));
  }
  return steps;
}

TEST(RopeScalingGenerate, YarnScaledModelGeneratesPastItsOriginalContext) {
  // Original context 32, extended 8 times; generation runs to position 80.
  const Kvs yarn = {{"llama.rope.scaling.type", std::string("yarn")},
                    {"llama.rope.scaling.factor", 8.0f},
                    {"llama.rope.scaling.original_context_length", uint32_t{32}}};
  Kvs yarn_off = yarn,
      linear = {{"llama.rope.scaling.type", std::string("linear")}, {"llama.rope.scaling.factor", 8.0f}};
  yarn_off.emplace_back("llama.rope.scaling.yarn_ext_factor", 0.0f);
  const int n_pos = 80;
  const auto got = greedy_logits(yarn, n_pos);
  const auto off = greedy_logits(yarn_off, n_pos);
  const auto lin = greedy_logits(linear, n_pos);
  ASSERT_EQ(got.size(), static_cast<size_t>(n_pos - 12 + 1));
  ASSERT_EQ(off.size(), got.size());
  ASSERT_EQ(lin.size(), got.size());
  EXPECT_EQ(off, lin) << "yarn with the ramp off must run exactly as linear scaling";
  EXPECT_NE(got.front(), lin.front()) << "the yarn ramp and magnitude correction did not reach the forward pass";
}

}  // namespace
}  // namespace rf::model
