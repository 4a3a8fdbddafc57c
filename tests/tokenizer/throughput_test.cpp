// Tokenizes 1 MB of English text with each tokenizer family and prints the time (a figure to report, not an
// assertion); checks that the ids read back as the text.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/shared_data.h"
#include "tokenizer/tokenizer.h"

namespace rf::tokenizer {
namespace {

// About 1 MB of English prose: the GPL text when present, else a fixed paragraph, repeated.
std::string english_megabyte() {
  std::string base;
  const auto gpl = test::read_file_bytes("/usr/share/common-licenses/GPL-3");
  if (gpl.size() > 10000) {
    base.assign(gpl.begin(), gpl.end());
  } else {
    base =
        "The quick brown fox jumps over the lazy dog. It's a fine day, isn't it? We'll see: 42 apples, "
        "3.14 pies and a well-known proverb.\nThe end of one line, and the start of another one.\n";
  }
  std::string text;
  while (text.size() < (1u << 20)) text += base;
  text.resize(1u << 20);
  return text;
}

TEST(Throughput, OneMegabyteOfEnglish) {
  if (std::getenv("ROCMFORGE_SLOW_TESTS_SKIP")) GTEST_SKIP() << "slow test skipped (ROCMFORGE_SLOW_TESTS_SKIP)";
  const std::string text = english_megabyte();
  for (const char* name : {"llama-spm", "gpt-2", "llama-bpe", "qwen2"}) {
    auto path = test::shared_path(std::string("tokenizer/ggml-vocab-") + name + ".gguf");
    if (!path) continue;
    auto tok = Tokenizer::open(*path);
    ASSERT_TRUE(tok.ok()) << tok.error_message();
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = (*tok)->tokenize(text, false, false);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ throughput ] %-10s 1 MiB -> %zu tokens in %.3f s (%.1f MB/s)\n", name, ids.size(), seconds,
                1.0 / seconds);
    ASSERT_FALSE(ids.empty());
    if (!(*tok)->vocab().clean_spaces) {
      EXPECT_EQ((*tok)->detokenize(ids), text) << name;
    }
  }
}

}  // namespace
}  // namespace rf::tokenizer
