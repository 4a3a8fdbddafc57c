#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_run.h"
#include "gguf/gguf.h"
#include "support/shared_data.h"

namespace rf::cli {
namespace {

using rf::test::run_cli;

std::vector<std::string> gguf_files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".gguf") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Inspect, ReadsEverySharedModelAndVocabFileAsJson) {
  RF_REQUIRE_SHARED(models, "models");
  RF_REQUIRE_SHARED(vocabs, "tokenizer");
  auto files = gguf_files_in(models);
  auto more = gguf_files_in(vocabs);
  files.insert(files.end(), more.begin(), more.end());
  ASSERT_GE(files.size(), 30u);
  for (const auto& path : files) {
    auto r = run_cli("inspect --json " + path);
    ASSERT_EQ(r.status, 0) << path << ": " << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << path;
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(j["tensors"].size(), (*f)->tensors().size()) << path;
    EXPECT_EQ(j["metadata"].size(), (*f)->metadata().size()) << path;
    EXPECT_EQ(j["version"], 3);
  }
}

TEST(Inspect, TextReportHasTensorTableTotalsAndHyperParameters) {
  RF_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto r = run_cli("inspect " + path);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("hyper-parameters (llama)"), std::string::npos);
  EXPECT_NE(r.out.find("block_count"), std::string::npos);
  EXPECT_NE(r.out.find("blk.4.ffn_down.weight"), std::string::npos);
  EXPECT_NE(r.out.find("totals per type"), std::string::npos);
  EXPECT_NE(r.out.find("(512 string items)"), std::string::npos);  // the vocabulary is summarized
}

TEST(Inspect, DefaultModelShipsWithTheRepository) {
  auto r = run_cli("inspect --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "qwen2");
  EXPECT_EQ(j["hparams"]["block_count"], 6);
}

TEST(Inspect, BadFileExitsOneWithOneClearLine) {
  const std::string path = ::testing::TempDir() + "not_a_model.gguf";
  std::ofstream(path, std::ios::binary) << "GGML this is not a gguf file at all";
  auto r = run_cli("inspect " + path);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("magic"), std::string::npos) << r.err;
  auto missing = run_cli("inspect /nonexistent/model.gguf");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("/nonexistent/model.gguf"), std::string::npos);
}

}  // namespace
}  // namespace rf::cli
