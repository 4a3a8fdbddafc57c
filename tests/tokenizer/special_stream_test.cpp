// Special-token parsing on real vocabularies, streaming detokenization, and the pre-tokenizer variants that have
// no shared test vectors.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "support/shared_data.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/pretokenizer_patterns.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace rf::tokenizer {
namespace {

TEST(SpecialTokens, ChatMarkersNeedParseSpecialUserDefinedDoNot) {
  RF_REQUIRE_SHARED(path, "tokenizer/ggml-vocab-qwen2.gguf");
  auto tok = Tokenizer::open(path);
  ASSERT_TRUE(tok.ok()) << tok.error_message();
  const Tokenizer& t = **tok;
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  const auto parsed = t.tokenize(text, false, true);
  ASSERT_GE(parsed.size(), 3u);
  EXPECT_EQ(parsed.front(), t.find_token("<|im_start|>"));
  EXPECT_EQ(parsed.back(), t.find_token("<|im_end|>"));
  const auto plain = t.tokenize(text, false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), t.find_token("<|im_start|>")), 0);
  EXPECT_EQ(t.detokenize(plain), text);
  EXPECT_EQ(t.detokenize(parsed, false, true), text);
  EXPECT_EQ(t.detokenize(parsed), "user\nhi");  // control tokens are not rendered by default
  EXPECT_EQ(t.eot(), t.find_token("<|im_end|>"));

  // Every user-defined token is found in text on its own; every control token only when asked.
  size_t n_user = 0, n_control = 0;
  for (int32_t id = 0; id < t.n_tokens(); ++id) {
    const std::string& s = t.token_text(id);
    if (t.attr(id) & kAttrControl) {
      EXPECT_EQ(t.tokenize(s, false, true), std::vector<int32_t>{id}) << s;
      EXPECT_NE(t.tokenize(s, false, false), std::vector<int32_t>{id}) << s;
      ++n_control;
    } else if (t.attr(id) & kAttrUserDefined) {
      EXPECT_EQ(t.tokenize("x" + s + "x", false, false).at(1), id) << s;
      ++n_user;
    }
  }
  EXPECT_GT(n_user, 0u);
  EXPECT_GT(n_control, 0u);
}

TEST(SpecialTokens, LlamaSpmBosEosText) {
  RF_REQUIRE_SHARED(path, "tokenizer/ggml-vocab-llama-spm.gguf");
  auto tok = Tokenizer::open(path);
  ASSERT_TRUE(tok.ok());
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.tokenize("<s>hi</s>", false, true).front(), 1);
  EXPECT_EQ(t.tokenize("<s>hi</s>", false, true).back(), 2);
  const auto plain = t.tokenize("<s>", false, false);  // plain text pieces, not BOS
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(t.detokenize(plain), "<s>");
  EXPECT_EQ(t.tokenize("hi", true, false).front(), 1);
  EXPECT_EQ(t.nl(), 13);  // <0x0A>
}

// Strict UTF-8 check (no overlong forms, surrogates or truncated sequences).
bool valid_utf8(const std::string& s) {
  StreamDecoder probe(nullptr);
  return probe.push_bytes(s) == s && probe.flush().empty();
}

// Pieces of a multi-byte character split across tokens are held back until complete.
TEST(StreamDecoder, NeverEmitsBrokenCharacters) {
  RF_REQUIRE_SHARED(spm_path, "tokenizer/ggml-vocab-llama-spm.gguf");
  RF_REQUIRE_SHARED(bpe_path, "tokenizer/ggml-vocab-gpt-2.gguf");
  const std::string text =
      "a\xF0\x9F\xA6\x99 \xE4\xBD\xA0\xE5\xA5\xBD \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80!";  // 🦙 你好 été 😀
  for (const std::string& path : {spm_path, bpe_path}) {
    auto tok = Tokenizer::open(path);
    ASSERT_TRUE(tok.ok());
    const auto ids = (*tok)->tokenize(text, false, false);
    StreamDecoder decoder(*tok);
    std::string all;
    std::string pieces;
    size_t held = 0;
    for (int32_t id : ids) {
      const std::string chunk = decoder.push(id);
      EXPECT_TRUE(valid_utf8(chunk)) << "chunk is not valid UTF-8";
      if (chunk.empty()) ++held;
      pieces += (*tok)->token_to_piece(id);
      all += chunk;
    }
    all += decoder.flush();
    EXPECT_EQ(all, pieces) << path;
    EXPECT_GT(held, 0u) << path << ": expected some tokens ending inside a character";
  }
}

TEST(StreamDecoder, HoldsPartialSequencesAndReplacesInvalidOnes) {
  RF_REQUIRE_SHARED(path, "tokenizer/ggml-vocab-llama-spm.gguf");
  auto tok = Tokenizer::open(path);
  ASSERT_TRUE(tok.ok());
  StreamDecoder d(*tok);
  EXPECT_EQ(d.push(3 + 0xE2), "");  // <0xE2>: first of three bytes of "€"
  EXPECT_EQ(d.push(3 + 0x82), "");
  EXPECT_EQ(d.push(3 + 0xAC), "\xE2\x82\xAC");
  EXPECT_EQ(d.push_bytes("\xC3("), "\xEF\xBF\xBD(");  // a lead byte followed by ASCII is invalid
  EXPECT_EQ(d.push_bytes("\x80"), "\xEF\xBF\xBD");    // a stray continuation byte
  EXPECT_EQ(d.push_bytes("\xF0\x9F"), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");  // an unfinished character at the end
  EXPECT_EQ(d.flush(), "");
}

std::vector<std::string> split(const std::vector<std::string>& patterns, const std::string& text) {
  auto pre = PreTokenizer::create(patterns);
  EXPECT_TRUE(pre.ok()) << pre.error_message();
  return pre.ok() ? pre->split(text) : std::vector<std::string>{};
}

TEST(PreTokenizer, Gpt4oSplitsLettersByCaseAndDigitsByThree) {
  const auto cfg = pre_tokenizer_config("gpt-4o");
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(split(cfg->patterns, "HelloWorld's test 12345"),
            (std::vector<std::string>{"Hello", "World's", " test", " ", "123", "45"}));
  // Reference quirk: non-ASCII letters have no case in its matcher, so "ÉCOLE" splits after "É".
  EXPECT_EQ(split(cfg->patterns,
                  "\xC3\x89"
                  "COLE"),
            (std::vector<std::string>{"\xC3\x89", "COLE"}));
}

TEST(PreTokenizer, TekkenSplitsDigitsOneByOneAndKeepsSlashRuns) {
  const auto cfg = pre_tokenizer_config("tekken");
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(split(cfg->patterns, "ab12 x/y\n\nZ"), (std::vector<std::string>{"ab", "1", "2", " x", "/y", "\n\n", "Z"}));
}

TEST(PreTokenizer, EveryKnownVariantCompiles) {
  for (const char* name :
       {"default", "gpt-2", "llama3", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "starcoder", "falcon",
        "mpt", "refact", "command-r", "smollm", "gpt-4o", "tekken", "bloom", "viking", "stablelm2"}) {
    const auto cfg = pre_tokenizer_config(name);
    ASSERT_TRUE(cfg.has_value()) << name;
    auto pre = PreTokenizer::create(cfg->patterns);
    EXPECT_TRUE(pre.ok()) << name << ": " << pre.error_message();
    if (pre.ok()) {
      const std::string text = "Hello, World! It's 2024\n\t  \xE4\xBD\xA0\xE5\xA5\xBD  x";
      std::string joined;
      for (const auto& w : pre->split(text)) joined += w;
      EXPECT_EQ(joined, text) << name;
    }
  }
  EXPECT_FALSE(pre_tokenizer_config("no-such-thing").has_value());
  EXPECT_FALSE(PreTokenizer::create({"(unclosed"}).ok());
}

// The hand-written GPT-2 and LLaMA-3 scanners must split exactly like the general regex path running the same
// pattern (wrapping it in a group keeps it off the scanner path).
TEST(PreTokenizer, ScannersAgreeWithTheRegexPath) {
  const std::vector<std::string> palette = {
      "a",   "Z",   "é", "ß", "1", "٣",  " ", "  ",       "\t",           "\n",       "\r", "'", "'s",
      "'LL", "'re", "!", ",", "$", "你", "😀", "\xC2\xA0", "\xE2\x80\x83", "\xCC\x81", "-",  "/", "\xE2\x85\xA0"};
  std::mt19937 rng(1234);
  const std::string gpt2(kGpt2Pattern);
  const std::string llama3(kLlama3Pattern);
  auto scan_gpt2 = PreTokenizer::create({gpt2});
  auto regex_gpt2 = PreTokenizer::create({"(?:" + gpt2 + ")|\\s+"});
  auto scan_llama3 = PreTokenizer::create({llama3});
  auto regex_llama3 = PreTokenizer::create({"(?:" + llama3 + ")"});
  ASSERT_TRUE(scan_gpt2.ok() && regex_gpt2.ok() && scan_llama3.ok() && regex_llama3.ok());
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) text += palette[rng() % palette.size()];
    EXPECT_EQ(scan_gpt2->split(text), regex_gpt2->split(text)) << "gpt2: '" << text << "'";
    EXPECT_EQ(scan_llama3->split(text), regex_llama3->split(text)) << "llama3: '" << text << "'";
  }
}

}  // namespace
}  // namespace rf::tokenizer
