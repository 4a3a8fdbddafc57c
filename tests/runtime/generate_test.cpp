#include "runtime/generate.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/shared_data.h"

namespace rf::runtime {
namespace {

TEST(Generate, Stories260KGreedyTextMatchesLlamaCpp) {
  RF_REQUIRE_SHARED(model, "models/stories260K.gguf");
  GenerateOptions o;
  o.model_path = model;
  o.prompt_tokens = {1, 403, 407, 261, 378};  // "Once upon a time" as llama.cpp tokenizes it
  o.n_predict = 24;
  o.sampling.temperature = 0.0f;
  o.threads = 2;
  std::string streamed;
  auto r = generate(o, [&](std::string_view s) { streamed += s; });
  ASSERT_TRUE(r.ok()) << r.error_message();
  EXPECT_EQ(r->text, ", there was a little girl named Lily. She loved to play outside in the p");
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->tokens.size(), 24u);
}

TEST(Generate, SameSeedSameTokens) {
  RF_REQUIRE_SHARED(model, "models/stories260K.gguf");
  GenerateOptions o;
  o.model_path = model;
  o.prompt_tokens = {1, 403, 407};
  o.n_predict = 12;
  o.sampling.temperature = 1.0f;
  o.sampling.seed = 7;
  o.threads = 1;
  auto a = generate(o), b = generate(o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
}

TEST(Generate, PromptLongerThanContextIsAnError) {
  RF_REQUIRE_SHARED(model, "models/stories260K.gguf");
  GenerateOptions o;
  o.model_path = model;
  o.prompt_tokens = std::vector<int32_t>(40, 1);
  o.ctx_size = 16;
  auto r = generate(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error_message().find("context"), std::string::npos);
}

TEST(Generate, DumpLogitsWritesOneRowPerPromptToken) {
  RF_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const std::string path = ::testing::TempDir() + "/rf_dump_logits.json";
  GenerateOptions o;
  o.model_path = model;
  o.prompt_tokens = {1, 403, 407};
  o.n_predict = 1;
  o.dump_logits_path = path;
  auto r = generate(o);
  ASSERT_TRUE(r.ok()) << r.error_message();
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["tokens"].get<std::vector<int>>(), (std::vector<int>{1, 403, 407}));
  ASSERT_EQ(j["logits"].size(), 3u);
  EXPECT_EQ(j["logits"][0].size(), 512u);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace rf::runtime
