// Every case of every shared vocabulary test file (llama.cpp's tokenizer test vectors) must give exactly the
// expected ids, and our ids must detokenize to the same text as the expected ids.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "support/shared_data.h"
#include "tokenizer/tokenizer.h"

namespace rf::tokenizer {
namespace {

std::vector<std::string> split_cases(const std::string& data) {
  static const std::string kSeparator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  size_t pos = 0;
  while (true) {
    const size_t hit = data.find(kSeparator, pos);
    if (hit == std::string::npos) break;
    cases.push_back(data.substr(pos, hit - pos));
    pos = hit + kSeparator.size();
  }
  return cases;
}

std::vector<std::vector<int32_t>> parse_ids(const std::string& data) {
  std::vector<std::vector<int32_t>> lines;
  std::istringstream in(data);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<int32_t> ids;
    std::istringstream words(line);
    int32_t id = 0;
    while (words >> id) ids.push_back(id);
    lines.push_back(std::move(ids));
  }
  return lines;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    s.push_back(' ');
    s += std::to_string(id);
  }
  return s;
}

std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

class VocabFileTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabFileTest, EveryCaseGivesTheReferenceIdsAndText) {
  const std::string name = GetParam();
  RF_REQUIRE_SHARED(gguf_path, "tokenizer/ggml-vocab-" + name + ".gguf");
  const auto inp = test::read_file_bytes(gguf_path + ".inp");
  const auto outp = test::read_file_bytes(gguf_path + ".out");
  const auto cases = split_cases(std::string(inp.begin(), inp.end()));
  const auto expected = parse_ids(std::string(outp.begin(), outp.end()));
  ASSERT_FALSE(cases.empty());
  ASSERT_EQ(cases.size(), expected.size()) << "case count differs between .inp and .out";

  auto tok = Tokenizer::open(gguf_path);
  ASSERT_TRUE(tok.ok()) << tok.error_message();
  size_t passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int32_t> got = (*tok)->tokenize(cases[i], false, false);
    EXPECT_EQ(got, expected[i]) << name << " case " << i << " '" << escape(cases[i]) << "'\n  expected"
                                << show(expected[i]) << "\n  got     " << show(got);
    EXPECT_EQ((*tok)->detokenize(got), (*tok)->detokenize(expected[i])) << name << " case " << i;
    if (got == expected[i]) ++passed;
  }
  std::printf("[ %-14s ] %zu/%zu cases match\n", name.c_str(), passed, cases.size());
}

INSTANTIATE_TEST_SUITE_P(SharedVocabs, VocabFileTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "starcoder", "deepseek-coder", "falcon",
                                           "mpt", "llama-bpe", "qwen2", "bert-bge"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace rf::tokenizer
