#include "server/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>

namespace rf::server {
namespace {

// Feeds pieces, returns (emitted text, stopped).
std::pair<std::string, bool> run(std::vector<std::string> stops, const std::vector<std::string>& pieces) {
  StopMatcher m(std::move(stops));
  std::string out;
  for (const auto& p : pieces) {
    auto o = m.push(p);
    out += o.text;
    if (o.stopped) return {out, true};
  }
  out += m.flush();
  return {out, false};
}

TEST(StopMatcher, StopInsideOnePieceCutsBeforeIt) {
  EXPECT_EQ(run({"END"}, {"abcENDdef"}), std::make_pair(std::string("abc"), true));
}

TEST(StopMatcher, StopSplitAcrossPiecesIsNeverEmitted) {
  StopMatcher m({"</s>"});
  auto a = m.push("hello <");
  EXPECT_EQ(a.text, "hello ");  // "<" could start the stop string: held
  auto b = m.push("/");
  EXPECT_EQ(b.text, "");
  auto c = m.push("s> tail");
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.text, "");
  EXPECT_EQ(m.push("more").text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, FalseStartIsReleasedWhenItStopsMatching) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("aST").text, "a");
  EXPECT_EQ(m.push("x").text, "STx");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, HeldTailFlushedAtEnd) {
  EXPECT_EQ(run({"xyz"}, {"abc", "xy"}), std::make_pair(std::string("abcxy"), false));
}

TEST(StopMatcher, EarliestOfSeveralStopsWins) {
  EXPECT_EQ(run({"world", "lo w"}, {"hel", "lo world"}), std::make_pair(std::string("hel"), true));
  EXPECT_EQ(run({"bb", "abbb"}, {"xa", "b", "bb"}), std::make_pair(std::string("x"), true));
}

TEST(StopMatcher, OverlappingPrefixesHeldCorrectly) {
  // "aab" after "aaa...": the held tail must keep "aa" so that "aab" is found.
  EXPECT_EQ(run({"aab"}, {"a", "a", "a", "b", "c"}), std::make_pair(std::string("a"), true));
}

TEST(StopMatcher, MultibyteStopString) {
  EXPECT_EQ(run({"\xC3\xA9t\xC3\xA9"}, {"un \xC3\xA9", "t\xC3", "\xA9 chaud"}),
            std::make_pair(std::string("un "), true));
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.push("abc").text, "abc");
  EXPECT_EQ(m.held_bytes(), 0u);
  EXPECT_EQ(run({""}, {"x", "y"}), std::make_pair(std::string("xy"), false));
}

// Property: for random texts cut at random points, the output equals the text up to the first stop occurrence
// (or all of it), whatever the piece boundaries.
TEST(StopMatcher, MatchesWholeTextSearchForAnySplit) {
  std::mt19937 rng(7);
  const std::vector<std::string> stops = {"ab", "bca", "cc"};
  for (int iter = 0; iter < 2000; ++iter) {
    std::string text;
    const int len = static_cast<int>(rng() % 12);
    for (int i = 0; i < len; ++i) text += static_cast<char>('a' + rng() % 3);
    size_t first = std::string::npos;
    for (const auto& s : stops) first = std::min(first, text.find(s));
    std::vector<std::string> pieces;
    for (size_t pos = 0; pos < text.size();) {
      const size_t n = std::min<size_t>(text.size() - pos, 1 + rng() % 3);
      pieces.push_back(text.substr(pos, n));
      pos += n;
    }
    const auto [out, stopped] = run(stops, pieces);
    EXPECT_EQ(stopped, first != std::string::npos) << text;
    EXPECT_EQ(out, first == std::string::npos ? text : text.substr(0, first)) << text;
  }
}

}  // namespace
}  // namespace rf::server
