// Every real GGUF file in ../shared loads, and known metadata reads back through the typed getters.
#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/gguf.h"
#include "support/shared_data.h"

namespace rf::gguf {
namespace {

std::vector<std::string> gguf_files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".gguf") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GgufSharedFiles, EveryModelLoadsWithTensorsInsideTheFile) {
  RF_REQUIRE_SHARED(dir, "models");
  auto files = gguf_files_in(dir);
  ASSERT_FALSE(files.empty());
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    auto f = File::open(path);
    ASSERT_TRUE(f.ok()) << f.error_message();
    EXPECT_EQ((*f)->version(), 3u);
    EXPECT_FALSE((*f)->tensors().empty());
    EXPECT_TRUE((*f)->has("general.architecture"));
    for (const auto& t : (*f)->tensors()) {
      ASSERT_NE(t.data, nullptr);
      EXPECT_EQ(t.offset % (*f)->alignment(), 0u);
      EXPECT_LE((*f)->data_offset() + t.offset + t.n_bytes, (*f)->file_size());
      EXPECT_EQ((*f)->find_tensor(t.name), &t);
    }
  }
}

TEST(GgufSharedFiles, EveryVocabOnlyFileLoadsWithoutTensors) {
  RF_REQUIRE_SHARED(dir, "tokenizer");
  auto files = gguf_files_in(dir);
  ASSERT_FALSE(files.empty());
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    auto f = File::open(path);
    ASSERT_TRUE(f.ok()) << f.error_message();
    EXPECT_TRUE((*f)->tensors().empty());
    auto tokens = (*f)->get<std::vector<std::string>>("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.error_message();
    EXPECT_GT(tokens->size(), 100u);
  }
}

TEST(GgufSharedFiles, Stories260KHasItsKnownHyperParameters) {
  RF_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto f = File::open(path);
  ASSERT_TRUE(f.ok()) << f.error_message();
  const File& file = **f;
  EXPECT_EQ(file.get<std::string>("general.architecture").value(), "llama");
  EXPECT_EQ(file.get<uint32_t>("llama.block_count").value(), 5u);
  EXPECT_EQ(file.get<uint32_t>("llama.embedding_length").value(), 64u);
  EXPECT_EQ(file.get<int64_t>("llama.feed_forward_length").value(), 172);
  EXPECT_EQ(file.get<uint32_t>("llama.attention.head_count").value(), 8u);
  EXPECT_EQ(file.get<uint32_t>("llama.attention.head_count_kv").value(), 4u);
  EXPECT_EQ(file.get<std::vector<std::string>>("tokenizer.ggml.tokens")->size(), 512u);
  EXPECT_EQ(file.get<std::vector<float>>("tokenizer.ggml.scores")->size(), 512u);
  EXPECT_EQ(file.get<std::vector<int32_t>>("tokenizer.ggml.token_type")->size(), 512u);
  const TensorInfo* emb = file.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, quant::Type::F32);
  EXPECT_EQ(emb->n_dims, 2);
  EXPECT_EQ(emb->ne[0], 64);
  EXPECT_EQ(emb->ne[1], 512);
  EXPECT_EQ(emb->n_bytes, 64u * 512u * 4u);
}

TEST(GgufSharedFiles, QuantizedFileReportsItsTensorTypes) {
  RF_REQUIRE_SHARED(path, "models/synth-llama-Q4_0.gguf");
  auto f = File::open(path);
  ASSERT_TRUE(f.ok()) << f.error_message();
  bool saw_q4_0 = false;
  for (const auto& t : (*f)->tensors()) saw_q4_0 |= t.type == quant::Type::Q4_0;
  EXPECT_TRUE(saw_q4_0);
  EXPECT_EQ((*f)->get<uint32_t>("llama.embedding_length").value(), 256u);
}

TEST(GgufSharedFiles, MissingFileIsAnErrorNamingThePath) {
  auto f = File::open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error_message().find("/nonexistent/dir/model.gguf"), std::string::npos);
}

}  // namespace
}  // namespace rf::gguf
