// The prompts of the shared golden-logit files must tokenize to the ids llama.cpp used (BOS per the model's
// add_bos flag), for the real models and the synthetic ones that reuse the stories260K vocabulary.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/shared_data.h"
#include "tokenizer/tokenizer.h"

namespace rf::tokenizer {
namespace {

TEST(GoldenPrompts, EveryGoldenFileTokenizesToItsTokens) {
  RF_REQUIRE_SHARED(dir, "golden/logits");
  size_t checked = 0;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    // "stories260K.p1.json" -> models/stories260K.gguf
    const std::string stem = path.filename().string();
    const std::string model = stem.substr(0, stem.find('.'));
    auto model_path = test::shared_path("models/" + model + ".gguf");
    if (!model_path) continue;
    const auto bytes = test::read_file_bytes(path.string());
    const auto golden = nlohmann::json::parse(bytes.begin(), bytes.end());
    const std::string prompt = golden.at("prompt").get<std::string>();
    const std::vector<int32_t> expected = golden.at("tokens").get<std::vector<int32_t>>();

    auto tok = Tokenizer::open(*model_path);
    ASSERT_TRUE(tok.ok()) << tok.error_message();
    EXPECT_EQ((*tok)->tokenize(prompt, true, false), expected) << stem << ": '" << prompt << "'";
    // The ids after BOS read back as the prompt (SentencePiece's added leading space removed).
    std::vector<int32_t> text_ids = expected;
    if ((*tok)->add_bos()) text_ids.erase(text_ids.begin());
    EXPECT_EQ((*tok)->detokenize(text_ids), prompt) << stem;
    ++checked;
  }
  EXPECT_GE(checked, 4u) << "expected the stories260K and fortune-qwen2 golden files";
}

TEST(GoldenPrompts, BosFollowsTheModelFlag) {
  RF_REQUIRE_SHARED(stories, "models/stories260K.gguf");
  RF_REQUIRE_SHARED(fortune, "models/fortune-qwen2-f32.gguf");
  auto spm = Tokenizer::open(stories);
  auto bpe = Tokenizer::open(fortune);
  ASSERT_TRUE(spm.ok() && bpe.ok());
  EXPECT_TRUE((*spm)->add_bos());
  EXPECT_EQ((*spm)->tokenize("Once", true, false).front(), (*spm)->bos());
  EXPECT_NE((*spm)->tokenize("Once", false, false).front(), (*spm)->bos());
  EXPECT_FALSE((*bpe)->add_bos());  // tokenizer.ggml.add_bos_token = false
  EXPECT_EQ((*bpe)->tokenize("Love is", true, false), (*bpe)->tokenize("Love is", false, false));
  EXPECT_EQ((*bpe)->eos(), 0);
  EXPECT_TRUE((*bpe)->is_eog(0));
}

}  // namespace
}  // namespace rf::tokenizer
