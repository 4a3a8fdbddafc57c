#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "cli/cli_run.h"
#include <string>
#include <vector>

#include "cli/synth.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace rf::cli {
namespace {

SynthOptions small(const std::string& type, const std::string& name) {
  SynthOptions o;
  o.n_embd = 256;
  o.n_ff = 512;
  o.n_layer = 3;
  o.n_head = 8;
  o.n_head_kv = 2;
  o.n_vocab = 300;
  o.type = type;
  o.output = ::testing::TempDir() + name;
  return o;
}

std::vector<float> dequantized(const gguf::TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  EXPECT_TRUE(quant::dequantize(t.type, t.data, v.data(), t.n_elements()).ok());
  return v;
}

TEST(Synth, WritesTheRequestedShapesHyperParametersAndVocabulary) {
  SynthOptions o = small("Q8_0", "synth_shapes.gguf");
  ASSERT_TRUE(write_synth_model(o).ok());
  auto f = gguf::File::open(o.output);
  ASSERT_TRUE(f.ok()) << f.error_message();
  EXPECT_EQ(*(*f)->get<std::string>("general.architecture"), "llama");
  EXPECT_EQ(*(*f)->get<uint32_t>("llama.block_count"), 3u);
  EXPECT_EQ(*(*f)->get<uint32_t>("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ((*f)->get<std::vector<std::string>>("tokenizer.ggml.tokens")->size(), 300u);
  EXPECT_EQ((*(*f)->get<std::vector<std::string>>("tokenizer.ggml.tokens"))[3 + 0x41], "<0x41>");
  const auto* k = (*f)->find_tensor("blk.2.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->ne[0], 256);
  EXPECT_EQ(k->ne[1], 64);  // n_head_kv * head_dim
  EXPECT_EQ(k->type, quant::Type::Q8_0);
  EXPECT_EQ((*f)->find_tensor("output.weight")->type, quant::Type::Q8_0);
  EXPECT_EQ((*f)->find_tensor("blk.0.attn_norm.weight")->type, quant::Type::F32);
  EXPECT_EQ((*f)->tensors().size(), 3u * 9 + 3);
}

TEST(Synth, WeightsFollowTheirDistributions) {
  SynthOptions o = small("F32", "synth_stats.gguf");
  ASSERT_TRUE(write_synth_model(o).ok());
  auto f = gguf::File::open(o.output);
  ASSERT_TRUE(f.ok());
  auto stats = [](const std::vector<float>& v) {
    double s = 0, s2 = 0;
    for (float x : v) s += x, s2 += double(x) * x;
    const double mean = s / double(v.size());
    return std::pair{mean, std::sqrt(s2 / double(v.size()) - mean * mean)};
  };
  auto [m, sd] = stats(dequantized(*(*f)->find_tensor("blk.0.ffn_down.weight")));  // fan_in = n_ff = 512
  EXPECT_NEAR(m, 0.0, 0.002);
  EXPECT_NEAR(sd, 1.0 / std::sqrt(512.0), 0.002);
  auto [nm, nsd] = stats(dequantized(*(*f)->find_tensor("output_norm.weight")));
  EXPECT_NEAR(nm, 1.0, 0.02);
  EXPECT_NEAR(nsd, 0.1, 0.02);
}

TEST(Synth, SameSeedSameBytesWhateverTheThreadCountOtherSeedOtherBytes) {
  SynthOptions a = small("Q4_K_M", "synth_a.gguf"), b = small("Q4_K_M", "synth_b.gguf"),
               c = small("Q4_K_M", "synth_c.gguf");
  a.threads = 1;
  b.threads = 3;
  c.seed = 7;
  ASSERT_TRUE(write_synth_model(a).ok());
  ASSERT_TRUE(write_synth_model(b).ok());
  ASSERT_TRUE(write_synth_model(c).ok());
  auto fa = gguf::File::open(a.output), fb = gguf::File::open(b.output), fc = gguf::File::open(c.output);
  ASSERT_TRUE(fa.ok() && fb.ok() && fc.ok());
  const auto* ta = (*fa)->find_tensor("blk.1.ffn_up.weight");
  const auto* tb = (*fb)->find_tensor("blk.1.ffn_up.weight");
  const auto* tc = (*fc)->find_tensor("blk.1.ffn_up.weight");
  ASSERT_EQ(ta->n_bytes, tb->n_bytes);
  EXPECT_EQ(std::memcmp(ta->data, tb->data, ta->n_bytes), 0);
  EXPECT_NE(std::memcmp(ta->data, tc->data, ta->n_bytes), 0);
}

TEST(Synth, PresetMixesTypesLikeTheQuantizerPresets) {
  auto plan = plan_synth_tensors(small("Q4_K_M", "unused"));
  ASSERT_TRUE(plan.ok());
  auto type_of = [&](const std::string& name) {
    for (const auto& t : *plan) {
      if (t.name == name) return t.type;
    }
    ADD_FAILURE() << name;
    return quant::Type::F32;
  };
  EXPECT_EQ(type_of("output.weight"), quant::Type::Q6_K);
  EXPECT_EQ(type_of("token_embd.weight"), quant::Type::Q4_K);
  EXPECT_EQ(type_of("blk.0.attn_q.weight"), quant::Type::Q4_K);
  EXPECT_EQ(type_of("blk.2.attn_v.weight"), quant::Type::Q6_K);  // last layer gets more bits
  EXPECT_EQ(type_of("blk.2.ffn_down.weight"), quant::Type::Q6_K);
  auto q40 = plan_synth_tensors(small("q4_0", "unused"));
  ASSERT_TRUE(q40.ok());
  EXPECT_EQ(q40->back().name, "output.weight");
  EXPECT_EQ(q40->back().type, quant::Type::Q6_K);
}

TEST(Synth, MoeAndQwenVariantsHaveTheirTensors) {
  SynthOptions o = small("Q8_0", "synth_moe.gguf");
  o.n_expert = 4;
  o.n_expert_used = 2;
  auto plan = plan_synth_tensors(o);
  ASSERT_TRUE(plan.ok());
  bool has_exps = false, has_router = false;
  for (const auto& t : *plan) {
    if (t.name == "blk.0.ffn_down_exps.weight") has_exps = t.shape == std::vector<int64_t>{512, 256, 4};
    if (t.name == "blk.0.ffn_gate_inp.weight") has_router = t.type == quant::Type::F32;
  }
  EXPECT_TRUE(has_exps);
  EXPECT_TRUE(has_router);
  o.n_expert = 0;
  o.n_expert_used = 0;
  o.arch = "qwen2";
  o.tied_embeddings = true;
  plan = plan_synth_tensors(o);
  ASSERT_TRUE(plan.ok());
  bool has_bias = false, has_output = false;
  for (const auto& t : *plan) {
    has_bias |= t.name == "blk.1.attn_k.bias";
    has_output |= t.name == "output.weight";
  }
  EXPECT_TRUE(has_bias);
  EXPECT_FALSE(has_output);
}

TEST(Synth, RejectsBadShapesAndTypes) {
  SynthOptions o = small("Q9_9", "unused");
  EXPECT_NE(plan_synth_tensors(o).error_message().find("unknown type"), std::string::npos);
  o = small("Q8_0", "unused");
  o.n_head_kv = 3;
  EXPECT_FALSE(plan_synth_tensors(o).ok());
  o = small("Q8_0", "unused");
  o.arch = "gpt-j";
  EXPECT_NE(plan_synth_tensors(o).error_message().find("gpt-j"), std::string::npos);
}

}  // namespace
}  // namespace rf::cli

namespace rf::cli {
namespace {

TEST(SynthCommand, StreamsAModelLargerThanItsMemoryUse) {
  if (std::getenv("ROCMFORGE_SLOW_TESTS_SKIP")) GTEST_SKIP() << "heavy: skipped in the sanitizer run";
  const std::string out = ::testing::TempDir() + "synth_big_" + std::to_string(::getpid()) + ".gguf";
  // token_embd + output: 2 x 16000 x 2048 and one layer: about 108M elements, 216 MB as F16.
  auto r = rf::test::run_cli_peak_rss({"synth", "--n-embd", "2048", "--n-ff", "4096", "--n-layer", "1", "--n-head",
                                       "16", "--n-vocab", "16000", "--type", "F16", "-o", out});
  ASSERT_EQ(r.status, 0);
  const auto file_bytes = static_cast<long>(std::filesystem::file_size(out));
  EXPECT_GT(file_bytes, 200L << 20);
  EXPECT_LT(r.peak_rss_bytes, file_bytes / 2) << "peak RSS " << r.peak_rss_bytes << " for a " << file_bytes
                                              << "-byte file: synth must stream, not hold the model";
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace rf::cli
