#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <set>

namespace rf::sampling {
namespace {

TEST(Sampler, ZeroTemperatureIsGreedy) {
  SamplerParams p;
  p.temperature = 0.0f;
  Sampler s(p);
  const std::vector<float> logits = {0.1f, 3.0f, 2.9f, -1.0f};
  EXPECT_EQ(s.sample(logits, {}), 1);
}

TEST(Sampler, SameSeedGivesSameTokens) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 42;
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i % 7) * 0.3f;
  Sampler a(p), b(p);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 32; ++i) {
    ta.push_back(a.sample(logits, {}));
    tb.push_back(b.sample(logits, {}));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_GT(std::set<int32_t>(ta.begin(), ta.end()).size(), 3u);  // it really samples
}

TEST(Sampler, TopKOneAlwaysPicksTheBest) {
  SamplerParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  Sampler s(p);
  const std::vector<float> logits = {1.0f, 0.9f, 2.0f, 1.5f};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits, {}), 2);
}

TEST(Sampler, TopPKeepsSmallestPrefixWithEnoughMass) {
  std::vector<Sampler::Candidate> c = {{0, 0, 0.5f}, {1, 0, 0.3f}, {2, 0, 0.15f}, {3, 0, 0.05f}};
  Sampler::top_p(c, 0.8f);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[1].id, 1);
}

TEST(Sampler, MinPDropsTokensBelowFractionOfBest) {
  std::vector<Sampler::Candidate> c = {{0, 0, 0.6f}, {1, 0, 0.3f}, {2, 0, 0.05f}};
  Sampler::min_p(c, 0.1f);  // threshold 0.06
  EXPECT_EQ(c.size(), 2u);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerParams p;
  p.repeat_penalty = 2.0f;
  std::vector<float> logits = {4.0f, -1.0f, 3.0f};
  const std::vector<int32_t> history = {0, 1};
  Sampler::apply_penalties(logits, history, p);
  EXPECT_FLOAT_EQ(logits[0], 2.0f);
  EXPECT_FLOAT_EQ(logits[1], -2.0f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesSubtract) {
  SamplerParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  std::vector<float> logits = {1.0f, 1.0f};
  const std::vector<int32_t> history = {0, 0, 0};
  Sampler::apply_penalties(logits, history, p);
  EXPECT_FLOAT_EQ(logits[0], 1.0f - 0.75f - 0.5f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f);
}

TEST(Sampler, PenaltyChangesGreedyChoice) {
  SamplerParams p;
  p.temperature = 0.0f;
  p.repeat_penalty = 3.0f;
  Sampler s(p);
  const std::vector<float> logits = {3.0f, 2.0f};
  const std::vector<int32_t> history = {0};
  EXPECT_EQ(s.sample(logits, history), 1);
}

}  // namespace
}  // namespace rf::sampling
