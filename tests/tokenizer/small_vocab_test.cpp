// Behaviour on tiny hand-made vocabularies, where every expected id can be worked out by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace rf::tokenizer {
namespace {

const std::string kSp = "\xE2\x96\x81";  // U+2581

// SentencePiece-style vocabulary: <unk> <s> </s>, 256 byte tokens, then pieces with scores.
VocabSpec spm_spec() {
  VocabSpec s;
  s.model = "llama";
  s.tokens = {"<unk>", "<s>", "</s>"};
  s.token_types = {2, 3, 3};
  s.scores = {0, 0, 0};
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    s.tokens.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    s.token_types.push_back(6);
    s.scores.push_back(0);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {kSp, -1.0f},       {"a", -2.0f},   {"b", -2.0f},    {"c", -2.0f}, {"ab", -0.5f}, {"bc", -0.2f},
      {kSp + "a", -0.3f}, {"abc", -0.1f}, {"<tag>", 0.0f}, {"x", -3.0f}, {"xx", -1.5f}};
  for (const auto& [text, score] : pieces) {
    s.tokens.push_back(text);
    s.token_types.push_back(text == "<tag>" ? 4 : 1);
    s.scores.push_back(score);
  }
  return s;
}

int32_t id_of(const Tokenizer& t, const std::string& text) { return t.find_token(text); }

TEST(SpmTokenizer, JoinsHighestScoringPairsFirst) {
  auto tok = Tokenizer::create(spm_spec());
  ASSERT_TRUE(tok.ok()) << tok.error_message();
  const Tokenizer& t = **tok;
  // "▁abc": bc (-0.2) beats ▁a (-0.3) and ab (-0.5); then a+bc = abc (-0.1); "▁abc" is no token.
  EXPECT_EQ(t.tokenize("abc", false, false), (std::vector<int32_t>{id_of(t, kSp), id_of(t, "abc")}));
  // "▁ab": ▁a (-0.3) beats ab (-0.5).
  EXPECT_EQ(t.tokenize("ab", false, false), (std::vector<int32_t>{id_of(t, kSp + "a"), id_of(t, "b")}));
}

TEST(SpmTokenizer, EqualScoresJoinTheLeftmostPairFirst) {
  auto tok = Tokenizer::create(spm_spec());
  ASSERT_TRUE(tok.ok());
  const Tokenizer& t = **tok;
  // "xxx" without the space prefix: both pairs are "xx"; the left one wins, leaving "x".
  const auto ids = t.tokenize("xxx", false, false);
  EXPECT_EQ(ids, (std::vector<int32_t>{id_of(t, kSp), id_of(t, "xx"), id_of(t, "x")}));
}

TEST(SpmTokenizer, UnknownCharactersFallBackToByteTokens) {
  auto tok = Tokenizer::create(spm_spec());
  ASSERT_TRUE(tok.ok());
  const Tokenizer& t = **tok;
  // "é" = C3 A9; byte tokens start at id 3.
  EXPECT_EQ(t.tokenize("\xC3\xA9", false, false), (std::vector<int32_t>{id_of(t, kSp), 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t.detokenize(t.tokenize("\xC3\xA9"
                                    "abc",
                                    false, false)),
            "\xC3\xA9"
            "abc");
}

TEST(SpmTokenizer, SpacePrefixAndBosFollowTheFlags) {
  VocabSpec spec = spm_spec();
  auto with_prefix = Tokenizer::create(spec);
  spec.add_space_prefix = false;
  spec.add_bos = false;
  auto without = Tokenizer::create(spec);
  ASSERT_TRUE(with_prefix.ok() && without.ok());
  EXPECT_EQ((*with_prefix)->tokenize("c", true, false),
            (std::vector<int32_t>{1, id_of(**with_prefix, kSp), id_of(**with_prefix, "c")}));
  EXPECT_EQ((*without)->tokenize("c", true, false), (std::vector<int32_t>{id_of(**without, "c")}));
  EXPECT_TRUE((*with_prefix)->tokenize("", false, false).empty());
  EXPECT_EQ((*with_prefix)->tokenize("", true, false), (std::vector<int32_t>{1}));
}

TEST(SpmTokenizer, UserDefinedTokensMatchWithoutParseSpecialAndRestartThePrefix) {
  auto tok = Tokenizer::create(spm_spec());
  ASSERT_TRUE(tok.ok());
  const Tokenizer& t = **tok;
  const int32_t tag = id_of(t, "<tag>");
  // The text after a special token gets the space prefix again, like at the start.
  EXPECT_EQ(t.tokenize("c<tag>c", false, false),
            (std::vector<int32_t>{id_of(t, kSp), id_of(t, "c"), tag, id_of(t, kSp), id_of(t, "c")}));
}

TEST(SpmTokenizer, ControlTokensNeedParseSpecial) {
  auto tok = Tokenizer::create(spm_spec());
  ASSERT_TRUE(tok.ok());
  const Tokenizer& t = **tok;
  const auto parsed = t.tokenize("</s>", false, true);
  EXPECT_EQ(parsed, (std::vector<int32_t>{2}));
  const auto plain = t.tokenize("</s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(t.detokenize(plain), "</s>");  // as bytes
  EXPECT_EQ(t.token_to_piece(2), "");      // control tokens render only on request
  EXPECT_EQ(t.token_to_piece(2, true), "</s>");
}

TEST(SpmTokenizer, DetokenizeDropsOnlyTheAddedLeadingSpace) {
  auto tok = Tokenizer::create(spm_spec());
  ASSERT_TRUE(tok.ok());
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.detokenize(t.tokenize("ab c", false, false)), "ab c");
  EXPECT_EQ(t.detokenize(t.tokenize(" ab", false, false)), " ab");
  // Like the reference: once a BOS is stripped, the space after it is kept.
  EXPECT_EQ(t.detokenize(t.tokenize("ab", true, false), true), " ab");
}

// Byte-level BPE vocabulary with a few merges (GPT-2 pre-tokenizer). "Ġ" is the byte character of ' '.
VocabSpec bpe_spec() {
  VocabSpec s;
  s.model = "gpt2";
  s.pre = "gpt-2";
  s.tokens = {"a",
              "b",
              "c",
              "\xC4\xA0",
              "ab",
              "\xC4\xA0"
              "a",
              "\xC4\xA0"
              "ab",
              "<|end|>",
              "<x>"};
  s.token_types = {1, 1, 1, 1, 1, 1, 1, 3, 4};
  s.merges = {"a b", "\xC4\xA0 a",
              "\xC4\xA0"
              "a b"};
  return s;
}

TEST(BpeTokenizer, AppliesMergesByRank) {
  auto tok = Tokenizer::create(bpe_spec());
  ASSERT_TRUE(tok.ok()) << tok.error_message();
  const Tokenizer& t = **tok;
  // " ab": "a b" (rank 0) merges before "Ġ a" (rank 1), and "Ġ ab" is no merge: [Ġ, ab].
  EXPECT_EQ(t.tokenize("ab ab", false, false), (std::vector<int32_t>{4, 3, 4}));
  EXPECT_EQ(t.tokenize(" a", false, false), (std::vector<int32_t>{5}));
  EXPECT_EQ(t.detokenize(t.tokenize("ab ab", false, false)), "ab ab");
}

TEST(BpeTokenizer, IgnoreMergesTakesWholeWordTokens) {
  VocabSpec spec = bpe_spec();
  spec.pre = "llama-bpe";  // ignore_merges: " ab" is a token of its own
  spec.add_bos = false;    // llama-bpe defaults add_bos on, and this vocabulary has no BOS
  auto tok = Tokenizer::create(spec);
  ASSERT_TRUE(tok.ok()) << tok.error_message();
  EXPECT_EQ((*tok)->tokenize("ab ab", false, false), (std::vector<int32_t>{4, 6}));
  spec.add_bos.reset();
  auto no_bos = Tokenizer::create(spec);
  ASSERT_FALSE(no_bos.ok());
  EXPECT_NE(no_bos.error_message().find("BOS"), std::string::npos);
}

TEST(BpeTokenizer, SpecialTokenParsing) {
  auto tok = Tokenizer::create(bpe_spec());
  ASSERT_TRUE(tok.ok());
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.tokenize("a<|end|>b", false, true), (std::vector<int32_t>{0, 7, 1}));
  EXPECT_EQ(t.tokenize("a<x>b", false, false), (std::vector<int32_t>{0, 8, 1}));  // user-defined: always
  EXPECT_EQ(t.tokenize("a<|end|>b", false, false).size(), 2u);  // control: only with parse_special (unknown bytes drop)
  EXPECT_TRUE(t.is_eog(7));
}

TEST(VocabErrors, ReportWhatIsWrong) {
  VocabSpec spec = bpe_spec();
  spec.pre = "no-such-pre";
  auto r = Tokenizer::create(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error_message().find("no-such-pre"), std::string::npos);

  spec = bpe_spec();
  spec.merges.clear();
  EXPECT_FALSE(Tokenizer::create(spec).ok());

  spec = bpe_spec();
  spec.tokens.push_back("a");
  spec.token_types.push_back(1);
  r = Tokenizer::create(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error_message().find("duplicate"), std::string::npos);

  spec = bpe_spec();
  spec.model = "rwkv";
  EXPECT_FALSE(Tokenizer::create(spec).ok());

  spec = spm_spec();
  spec.scores.resize(3);
  EXPECT_FALSE(Tokenizer::create(spec).ok());
}

}  // namespace
}  // namespace rf::tokenizer
